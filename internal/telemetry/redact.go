package telemetry

import (
	"context"
	"net/url"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Redacted replaces secrets in telemetry.
const Redacted = "REDACTED"

// redactingExporter hides secrets before spans leave the process: query
// values and passwords in any URL-looking attribute (a monitored URL may
// hold a token; an error message may quote it), url.query values, and
// header attributes naming credentials. Instrumentation sets attributes at
// any time, so this is done at export, on the finished span.
type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := spans
	for i, s := range spans {
		if !needsRedaction(s) {
			continue
		}
		if &out[0] == &spans[0] {
			out = append([]sdktrace.ReadOnlySpan(nil), spans...)
		}
		stub := tracetest.SpanStubFromReadOnlySpan(s)
		stub.Attributes = redactAttrs(stub.Attributes)
		for j := range stub.Events {
			stub.Events[j].Attributes = redactAttrs(stub.Events[j].Attributes)
		}
		out[i] = stub.Snapshot()
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

func needsRedaction(s sdktrace.ReadOnlySpan) bool {
	for _, kv := range s.Attributes() {
		if redactAttr(kv) != kv {
			return true
		}
	}
	for _, ev := range s.Events() {
		for _, kv := range ev.Attributes {
			if redactAttr(kv) != kv {
				return true
			}
		}
	}
	return false
}

func redactAttrs(kvs []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = redactAttr(kv)
	}
	return out
}

func redactAttr(kv attribute.KeyValue) attribute.KeyValue {
	key := string(kv.Key)
	switch {
	case strings.HasPrefix(key, "http.request.header.") || strings.HasPrefix(key, "http.response.header."):
		if sensitiveHeader(key[strings.LastIndexByte(key, '.')+1:]) {
			return attribute.StringSlice(key, []string{Redacted})
		}
		return kv
	case key == "url.query":
		if v := kv.Value.AsString(); v != "" {
			if r := redactQuery(v); r != v {
				return attribute.String(key, r)
			}
		}
		return kv
	case kv.Value.Type() == attribute.STRING:
		v := kv.Value.AsString()
		if strings.Contains(v, "://") && strings.ContainsAny(v, "?@") {
			if r := RedactURLs(v); r != v {
				return attribute.String(key, r)
			}
		}
	}
	return kv
}

var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// RedactURLs applies RedactURL to every URL inside s (an error message may
// quote one).
func RedactURLs(s string) string {
	return urlPattern.ReplaceAllStringFunc(s, RedactURL)
}

// RedactURL hides the password and every query value of a URL.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: keep nothing after the path; with an @, which may end
		// credentials anywhere before it, keep only the scheme.
		if strings.Contains(raw, "@") {
			if scheme, _, ok := strings.Cut(raw, "://"); ok && !strings.ContainsAny(scheme, ":@/?#") {
				return scheme + "://" + Redacted
			}
			return Redacted
		}
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			return raw[:i] + "?" + Redacted
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	if u.RawQuery != "" {
		u.RawQuery = redactQuery(u.RawQuery)
	}
	return u.String()
}

func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if k, v, ok := strings.Cut(p, "="); ok && v != Redacted {
			parts[i] = k + "=" + Redacted
		}
	}
	return strings.Join(parts, "&")
}

func sensitiveHeader(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"authorization", "cookie", "token", "secret", "key", "password"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}
