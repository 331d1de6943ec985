// Package notify sends notifications over generic channels: signed webhooks
// (Webhook) and e-mail over SMTP (Email). It knows nothing of what is being
// notified: the caller builds the Message and decides what to do with a
// failure.
//
// Retries are the caller's job (a job queue retries with backoff). Every error
// says whether retrying can help: IsPermanent reports failures that will fail
// the same way again (a 4xx response, a 5xx SMTP reply, a destination the
// network policy refuses, an invalid address), and every other error is worth
// retrying (a 5xx response, 408 or 429, a 4xx SMTP reply, a network error or
// timeout).
//
// Error messages are safe to log and to show to the channel's owner: they
// never contain a webhook secret or SMTP password, and webhook URLs appear
// without their userinfo, path and query, which often carry tokens.
package notify

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Message is one notification, rendered for every kind of channel.
type Message struct {
	// Event names what happened, e.g. "incident.opened", "incident.resolved"
	// or "test". Sent as the Beacon-Event header and the envelope's "event".
	Event string
	// ID identifies the delivery. The caller keeps it stable across retries of
	// the same notification, so that receivers can drop duplicates. Sent as
	// the Beacon-Delivery header and the envelope's "id", and hashed into the
	// e-mail's Message-ID.
	ID string
	// Subject is the one-line e-mail subject.
	Subject string
	// Text is the plain-text e-mail body.
	Text string
	// Payload is the "data" member of the webhook's JSON envelope.
	Payload any
}

// PermanentError wraps a failure that retrying will not fix.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or an error it wraps) is a failure that
// retrying will not fix. A nil error is not permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

func permanent(err error) error { return &PermanentError{Err: err} }

func permanentf(format string, args ...any) error {
	return permanent(fmt.Errorf(format, args...))
}

// redactURL returns the scheme and host of a URL, the only parts that are
// safe to log: userinfo, path and query often carry credentials (Slack's and
// Discord's webhook URLs keep their token in the path).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		s += "/…"
	}
	return s
}

// checkHeaderValue refuses values that would end a header line: a CR or LF
// in them would let whoever chose the value add headers of their own.
func checkHeaderValue(name, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return permanentf("notify: %s contains a line break or NUL", name)
	}
	return nil
}
