package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DefaultMaxRedirects is the redirect limit used when
// ClientOptions.MaxRedirects is zero.
const DefaultMaxRedirects = 5

// ErrTooManyRedirects is returned (wrapped in *url.Error) by a client from
// Policy.HTTPClient when a redirect chain exceeds ClientOptions.MaxRedirects.
var ErrTooManyRedirects = errors.New("netguard: too many redirects")

// ErrRedirectScheme is returned (wrapped in *url.Error) by a client from
// Policy.HTTPClient when a redirect points to a scheme other than http or
// https.
var ErrRedirectScheme = errors.New("netguard: redirect to disallowed scheme")

// ClientOptions configures Policy.HTTPClient.
type ClientOptions struct {
	// MaxRedirects is the number of redirects to follow. Zero means
	// DefaultMaxRedirects; a negative value means redirects are not followed
	// and the 3xx response itself is returned to the caller.
	MaxRedirects int
	// UserAgent, if non-empty, is sent on requests that have no User-Agent
	// header (instead of Go's default "Go-http-client/1.1"). A request whose
	// header map contains User-Agent, even empty, is left alone.
	UserAgent string
	// Transport optionally wraps the guarded transport, e.g. with
	// otelhttp.NewTransport. The wrapper must delegate to the RoundTripper it
	// is given: that is where the policy is enforced, and a wrapper that
	// dials on its own bypasses it. A nil result is ignored.
	Transport func(http.RoundTripper) http.RoundTripper
}

// HTTPClient returns an http.Client whose every connection, including those
// made while following redirects, is subject to the policy.
//
// The client:
//   - ignores HTTP_PROXY/HTTPS_PROXY, since a proxy would make the
//     connection to the proxy and let it reach the refused destination;
//   - disables keep-alives, so each check measures a fresh connection
//     (DNS, TCP connect and TLS handshake) and nothing is reused between
//     checks of different users;
//   - bounds dialling and the TLS handshake to 10s each and response headers
//     to 64 KiB;
//   - has no overall Timeout: bound each request with a context deadline
//     (http.NewRequestWithContext), which also bounds waiting for headers;
//   - stops after MaxRedirects redirects with ErrTooManyRedirects and refuses
//     redirects to non-http(s) schemes with ErrRedirectScheme. As documented
//     for http.Client, such an error is returned together with the last
//     response, whose body is already closed.
//
// Refused destinations surface as errors matching errors.Is(err, ErrRefused)
// (and errors.As to *RefusedError) through the *url.Error and *net.OpError
// wrapping. Every call returns an independent client and transport.
func (p *Policy) HTTPClient(opts ClientOptions) *http.Client {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: p.Control,
	}
	base := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Needed because DialContext is customised: without it the transport
		// would silently fall back to HTTP/1.1 only.
		ForceAttemptHTTP2: true,
	}
	var rt http.RoundTripper = base
	if opts.Transport != nil {
		if wrapped := opts.Transport(rt); wrapped != nil {
			rt = wrapped
		}
	}
	if opts.UserAgent != "" {
		// Outermost, so that an instrumentation wrapper sees (and records)
		// the User-Agent actually sent.
		rt = &userAgentTransport{next: rt, userAgent: opts.UserAgent}
	}

	maxRedirects := opts.MaxRedirects
	if maxRedirects == 0 {
		maxRedirects = DefaultMaxRedirects
	}
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if maxRedirects < 0 {
				return http.ErrUseLastResponse
			}
			// The redirect target's host is deliberately not checked here:
			// the dial of the next hop goes through Control, which sees the
			// resolved address.
			if s := req.URL.Scheme; s != "http" && s != "https" {
				return fmt.Errorf("%w: %q", ErrRedirectScheme, s)
			}
			// via holds the requests already sent, so len(via) is the number
			// of the redirect about to be followed.
			if len(via) > maxRedirects {
				return fmt.Errorf("%w: stopped after %d", ErrTooManyRedirects, maxRedirects)
			}
			return nil
		},
	}
}

// userAgentTransport sets a default User-Agent on requests that have none.
type userAgentTransport struct {
	next      http.RoundTripper
	userAgent string
}

func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Like net/http, treat a present-but-empty User-Agent as the caller's
	// explicit wish to send none.
	if _, ok := req.Header["User-Agent"]; ok {
		return t.next.RoundTrip(req)
	}
	// A RoundTripper must not modify the caller's request, so set the header
	// on a clone.
	r := req.Clone(req.Context())
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header.Set("User-Agent", t.userAgent)
	return t.next.RoundTrip(r)
}
