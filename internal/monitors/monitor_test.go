package monitors_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/monitors"
)

func TestSpecNormalize(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		var s monitors.Spec
		s.Normalize()
		require.Equal(t, "GET", s.Method)
		require.Equal(t, 60, s.IntervalSeconds)
		require.Equal(t, 5000, s.TimeoutMS)
		// Not nil: stored as '{}' and encoded as [] rather than null.
		require.NotNil(t, s.ExpectedStatus)
		require.Empty(t, s.ExpectedStatus)
	})

	t.Run("CanonicalForms", func(t *testing.T) {
		t.Parallel()
		s := monitors.Spec{
			Name:            "  api  ",
			URL:             "\thttps://example.com/health \n",
			Method:          " post ",
			IntervalSeconds: 30,
			TimeoutMS:       250,
			ExpectedStatus:  []int{404, 200, 404, 204, 200},
			Enabled:         true,
		}
		s.Normalize()
		require.Equal(t, monitors.Spec{
			Name:            "api",
			URL:             "https://example.com/health",
			Method:          "POST",
			IntervalSeconds: 30,
			TimeoutMS:       250,
			ExpectedStatus:  []int{200, 204, 404},
			Enabled:         true,
		}, s)
	})
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()

	base := monitors.Spec{Name: "api", URL: "https://example.com/health", Method: "GET", IntervalSeconds: 60, TimeoutMS: 5000}
	codes := func(n int) []int {
		cs := make([]int, n)
		for i := range cs {
			cs[i] = 200 + i
		}
		return cs
	}

	tests := []struct {
		name   string
		change func(*monitors.Spec)
		field  string // "" means valid
	}{
		{"Valid", func(*monitors.Spec) {}, ""},

		{"NameEmpty", func(s *monitors.Spec) { s.Name = "" }, "name"},
		{"NameBlank", func(s *monitors.Spec) { s.Name = "   " }, "name"},
		{"NameMaxLength", func(s *monitors.Spec) { s.Name = strings.Repeat("a", monitors.MaxNameLen) }, ""},
		{"NameTooLong", func(s *monitors.Spec) { s.Name = strings.Repeat("a", monitors.MaxNameLen+1) }, "name"},
		// Characters, not bytes: 200 two-byte characters are fine.
		{"NameMaxLengthMultibyte", func(s *monitors.Spec) { s.Name = strings.Repeat("é", monitors.MaxNameLen) }, ""},
		{"NameTooLongMultibyte", func(s *monitors.Spec) { s.Name = strings.Repeat("é", monitors.MaxNameLen+1) }, "name"},

		{"URLEmpty", func(s *monitors.Spec) { s.URL = "" }, "url"},
		{"URLMaxLength", func(s *monitors.Spec) {
			s.URL = "https://example.com/" + strings.Repeat("a", monitors.MaxURLLen-len("https://example.com/"))
		}, ""},
		{"URLTooLong", func(s *monitors.Spec) {
			s.URL = "https://example.com/" + strings.Repeat("a", monitors.MaxURLLen-len("https://example.com/")+1)
		}, "url"},
		{"URLUnparsable", func(s *monitors.Spec) { s.URL = "http://exa mple.com/" }, "url"},
		{"URLHTTP", func(s *monitors.Spec) { s.URL = "http://example.com:8080/path?q=1" }, ""},
		{"URLSchemeUppercase", func(s *monitors.Spec) { s.URL = "HTTPS://example.com/" }, ""},
		{"URLIPv6Literal", func(s *monitors.Spec) { s.URL = "http://[2001:db8::1]:8080/" }, ""},
		{"URLSchemeFTP", func(s *monitors.Spec) { s.URL = "ftp://example.com/file" }, "url"},
		{"URLSchemeFile", func(s *monitors.Spec) { s.URL = "file:///etc/passwd" }, "url"},
		{"URLSchemeJavascript", func(s *monitors.Spec) { s.URL = "javascript:alert(1)" }, "url"},
		{"URLNoScheme", func(s *monitors.Spec) { s.URL = "example.com/health" }, "url"},
		{"URLNoHost", func(s *monitors.Spec) { s.URL = "http://" }, "url"},
		{"URLNoHostWithPath", func(s *monitors.Spec) { s.URL = "http:///health" }, "url"},
		{"URLPortOnly", func(s *monitors.Spec) { s.URL = "http://:8080/" }, "url"},
		{"URLCredentials", func(s *monitors.Spec) { s.URL = "https://user:secret@example.com/" }, "url"},
		{"URLUsernameOnly", func(s *monitors.Spec) { s.URL = "https://user@example.com/" }, "url"},
		{"URLFragment", func(s *monitors.Spec) { s.URL = "https://example.com/#top" }, "url"},

		{"MethodDefault", func(s *monitors.Spec) { s.Method = "" }, ""},
		{"MethodLowercase", func(s *monitors.Spec) { s.Method = "head" }, ""},
		{"MethodPOST", func(s *monitors.Spec) { s.Method = "POST" }, ""},
		{"MethodPUT", func(s *monitors.Spec) { s.Method = "PUT" }, "method"},
		{"MethodDELETE", func(s *monitors.Spec) { s.Method = "delete" }, "method"},
		{"MethodNonsense", func(s *monitors.Spec) { s.Method = "GET /" }, "method"},

		{"IntervalDefault", func(s *monitors.Spec) { s.IntervalSeconds = 0 }, ""},
		{"IntervalMin", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 10, 9999 }, ""},
		{"IntervalBelowMin", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 9, 1000 }, "interval_seconds"},
		{"IntervalNegative", func(s *monitors.Spec) { s.IntervalSeconds = -60 }, "interval_seconds"},
		{"IntervalMax", func(s *monitors.Spec) { s.IntervalSeconds = 86400 }, ""},
		{"IntervalAboveMax", func(s *monitors.Spec) { s.IntervalSeconds = 86401 }, "interval_seconds"},

		{"TimeoutDefault", func(s *monitors.Spec) { s.TimeoutMS = 0 }, ""},
		{"TimeoutMin", func(s *monitors.Spec) { s.TimeoutMS = 100 }, ""},
		{"TimeoutBelowMin", func(s *monitors.Spec) { s.TimeoutMS = 99 }, "timeout_ms"},
		{"TimeoutNegative", func(s *monitors.Spec) { s.TimeoutMS = -1 }, "timeout_ms"},
		{"TimeoutMax", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 61, 60000 }, ""},
		{"TimeoutAboveMax", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 120, 60001 }, "timeout_ms"},
		{"TimeoutEqualsInterval", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 10, 10000 }, "timeout_ms"},
		{"TimeoutEqualsMaxTimeoutInterval", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 60, 60000 }, "timeout_ms"},
		{"TimeoutAboveInterval", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 10, 20000 }, "timeout_ms"},
		// The default timeout must fit the smallest interval.
		{"DefaultTimeoutWithMinInterval", func(s *monitors.Spec) { s.IntervalSeconds, s.TimeoutMS = 10, 0 }, ""},

		{"ExpectedStatusBounds", func(s *monitors.Spec) { s.ExpectedStatus = []int{100, 599} }, ""},
		{"ExpectedStatusBelow100", func(s *monitors.Spec) { s.ExpectedStatus = []int{200, 99} }, "expected_status"},
		{"ExpectedStatusAbove599", func(s *monitors.Spec) { s.ExpectedStatus = []int{600} }, "expected_status"},
		{"ExpectedStatusZero", func(s *monitors.Spec) { s.ExpectedStatus = []int{0} }, "expected_status"},
		{"ExpectedStatusMaxCount", func(s *monitors.Spec) { s.ExpectedStatus = codes(20) }, ""},
		{"ExpectedStatusTooMany", func(s *monitors.Spec) { s.ExpectedStatus = codes(21) }, "expected_status"},
		// Counted after de-duplication.
		{"ExpectedStatusDuplicates", func(s *monitors.Spec) { s.ExpectedStatus = append(codes(20), codes(20)...) }, ""},

		{"SlugNone", func(s *monitors.Spec) { s.PublicSlug = nil }, ""},
		{"SlugMinLength", func(s *monitors.Spec) { s.PublicSlug = ptr("a1b") }, ""},
		{"SlugMaxLength", func(s *monitors.Spec) { s.PublicSlug = ptr(strings.Repeat("a", 64)) }, ""},
		{"SlugDashes", func(s *monitors.Spec) { s.PublicSlug = ptr("my-api--status") }, ""},
		{"SlugDigits", func(s *monitors.Spec) { s.PublicSlug = ptr("2030") }, ""},
		{"SlugEmpty", func(s *monitors.Spec) { s.PublicSlug = ptr("") }, "public_slug"},
		{"SlugTooShort", func(s *monitors.Spec) { s.PublicSlug = ptr("ab") }, "public_slug"},
		{"SlugTooLong", func(s *monitors.Spec) { s.PublicSlug = ptr(strings.Repeat("a", 65)) }, "public_slug"},
		{"SlugLeadingDash", func(s *monitors.Spec) { s.PublicSlug = ptr("-api") }, "public_slug"},
		{"SlugTrailingDash", func(s *monitors.Spec) { s.PublicSlug = ptr("api-") }, "public_slug"},
		{"SlugUppercase", func(s *monitors.Spec) { s.PublicSlug = ptr("My-API") }, "public_slug"},
		{"SlugUnderscore", func(s *monitors.Spec) { s.PublicSlug = ptr("my_api") }, "public_slug"},
		{"SlugDot", func(s *monitors.Spec) { s.PublicSlug = ptr("my.api") }, "public_slug"},
		{"SlugSlash", func(s *monitors.Spec) { s.PublicSlug = ptr("my/api") }, "public_slug"},
		{"SlugSpace", func(s *monitors.Spec) { s.PublicSlug = ptr("my api") }, "public_slug"},
		{"SlugPadded", func(s *monitors.Spec) { s.PublicSlug = ptr(" api ") }, "public_slug"},
		{"SlugTrailingNewline", func(s *monitors.Spec) { s.PublicSlug = ptr("api\n") }, "public_slug"},
		{"SlugNonASCII", func(s *monitors.Spec) { s.PublicSlug = ptr("café") }, "public_slug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := base
			tt.change(&s)
			s.Normalize()
			err := s.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tt.field)
		})
	}

	// Validate stands on its own: a caller that skips Normalize cannot store
	// a zero interval or a lowercase method.
	t.Run("WithoutNormalize", func(t *testing.T) {
		t.Parallel()
		s := base
		s.IntervalSeconds = 0
		requireInvalid(t, s.Validate(), "interval_seconds")

		s = base
		s.TimeoutMS = 0
		requireInvalid(t, s.Validate(), "timeout_ms")

		s = base
		s.Method = "get"
		requireInvalid(t, s.Validate(), "method")
	})
}

func TestSpecExpects(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		expected []int
		status   int
		want     bool
	}{
		{"AnyEmpty199", nil, 199, false},
		{"AnyEmpty200", nil, 200, true},
		{"AnyEmpty204", []int{}, 204, true},
		{"AnyEmpty299", nil, 299, true},
		{"AnyEmpty301", nil, 301, false},
		{"AnyEmpty404", nil, 404, false},
		{"AnyEmpty500", nil, 500, false},
		{"ListedFirst", []int{200, 404}, 200, true},
		{"ListedLast", []int{200, 404}, 404, true},
		// An explicit list replaces "any 2xx".
		{"Unlisted2xx", []int{200, 404}, 204, false},
		{"Unlisted5xx", []int{200, 404}, 500, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := monitors.Spec{ExpectedStatus: tt.expected}
			require.Equal(t, tt.want, s.Expects(tt.status))
		})
	}
}

func TestMonitorDurations(t *testing.T) {
	t.Parallel()
	m := monitors.Monitor{Spec: monitors.Spec{IntervalSeconds: 90, TimeoutMS: 1500}}
	require.Equal(t, 90*time.Second, m.Interval())
	require.Equal(t, 1500*time.Millisecond, m.Timeout())
}

func ptr[T any](v T) *T { return &v }

// Text PostgreSQL cannot store is the client's mistake (422 on the named
// field), not a server error.
func TestSpecRefusesUnstorableText(t *testing.T) {
	t.Parallel()
	for _, s := range []monitors.Spec{
		{Name: "a\x00b", URL: "https://example.com/", Enabled: true},
		{Name: "a\xffb", URL: "https://example.com/", Enabled: true},
		{Name: "ok", URL: "https://example.com/\x00", Enabled: true},
	} {
		s.Normalize()
		err := s.Validate()
		require.Equal(t, apperr.Invalid, apperr.CodeOf(err), "%q %q", s.Name, s.URL)
	}
}
