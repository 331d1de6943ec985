package telemetry

import (
	"context"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Redacted replaces secrets in telemetry.
const Redacted = "REDACTED"

// redactor rewrites span attributes that may carry secrets as each span
// starts (instrumentation sets URLs then), before any exporter can see them:
// query values and credentials in URLs (a monitored URL may hold a token),
// and any header attribute naming credentials.
type redactor struct{}

func (redactor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	var fixed []attribute.KeyValue
	for _, kv := range s.Attributes() {
		key := string(kv.Key)
		switch {
		case key == "url.full" || key == "http.url":
			if v := RedactURL(kv.Value.AsString()); v != kv.Value.AsString() {
				fixed = append(fixed, attribute.String(key, v))
			}
		case key == "url.query":
			if kv.Value.AsString() != "" {
				fixed = append(fixed, attribute.String(key, redactQuery(kv.Value.AsString())))
			}
		case strings.HasPrefix(key, "http.request.header.") || strings.HasPrefix(key, "http.response.header."):
			name := key[strings.LastIndexByte(key, '.')+1:]
			if sensitiveHeader(name) {
				fixed = append(fixed, attribute.StringSlice(key, []string{Redacted}))
			}
		}
	}
	if len(fixed) > 0 {
		s.SetAttributes(fixed...)
	}
}

func (redactor) OnEnd(sdktrace.ReadOnlySpan)      {}
func (redactor) Shutdown(context.Context) error   { return nil }
func (redactor) ForceFlush(context.Context) error { return nil }

// RedactURL hides the password and every query value of a URL.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: keep nothing after the path.
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			return raw[:i]
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
		if k, _, ok := strings.Cut(p, "="); ok {
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
