package monitors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beaconhq/beacon/internal/netguard"
)

// maxBodyRead bounds how much of a response a check reads: enough to time a
// real page load, never enough to let a target exhaust memory.
const maxBodyRead = 1 << 20

// maxErrorLen bounds a stored error text (and the NOTIFY payload that carries it).
const maxErrorLen = 500

// Checker performs one HTTP check of a monitor.
type Checker struct {
	Client *http.Client // must enforce the outbound policy (netguard)
	Now    func() time.Time
}

// Check requests the monitor's URL within its timeout and reports the
// outcome. A failing target is a Result with OK false, not an error; the
// caller tells its own cancellation apart by looking at ctx.Err().
func (c *Checker) Check(ctx context.Context, m Monitor) Result {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	r := Result{MonitorID: m.ID, CheckedAt: now()}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout())
	defer cancel()

	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, m.Method, m.URL, nil)
	if err != nil {
		r.ErrorKind, r.Error = "request", "cannot build request"
		return r
	}
	resp, err := c.Client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyRead))
		resp.Body.Close()
		code := resp.StatusCode
		r.StatusCode = &code
	}
	r.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	switch {
	case err != nil:
		r.ErrorKind, r.Error = classify(ctx, err)
		r.Error = capText(r.Error)
	case !m.Expects(*r.StatusCode):
		r.ErrorKind, r.Error = "status", "unexpected status "+http.StatusText(*r.StatusCode)
	default:
		r.OK = true
	}
	return r
}

// allowHint tells an operator watching a local or private service how to
// allow it.
const allowHint = " (an operator may allow private ranges with BEACON_CHECK_ALLOW_CIDRS)"

// classify turns a transport error into a kind and a message for the
// monitor's owner. The URL is left out: its query string may hold secrets.
func classify(ctx context.Context, err error) (kind, msg string) {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		x509Err x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
		refused *netguard.RefusedError
		opErr   *net.OpError
	)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout", "no complete response within the timeout"
	case errors.As(err, &refused):
		return "refused", "destination refused by policy: " + refused.Reason + allowHint
	case errors.Is(err, netguard.ErrRefused):
		return "refused", "destination refused by policy" + allowHint
	case errors.Is(err, netguard.ErrTooManyRedirects):
		return "redirect", "too many redirects"
	case errors.Is(err, netguard.ErrRedirectScheme):
		return "redirect", "redirect to a scheme other than http or https"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "dns", "host not found"
		}
		return "dns", "name resolution failed"
	case errors.As(err, &certErr), errors.As(err, &x509Err), errors.As(err, &hostErr), errors.As(err, &recErr):
		return "tls", "TLS: " + innerText(err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "connect", "connection failed: " + innerText(opErr.Err)
	case errors.As(err, &opErr):
		// Not opErr.Error(): it names the worker's own address and port.
		return "request", opErr.Op + ": " + innerText(opErr.Err)
	default:
		return "request", innerText(err)
	}
}

// innerText drops the "Get \"https://...\":" prefix url.Error adds.
func innerText(err error) string {
	var uErr *url.Error
	if errors.As(err, &uErr) {
		err = uErr.Err
	}
	return err.Error()
}

// capText bounds an error text to maxErrorLen bytes, cutting on a rune
// boundary and making it valid UTF-8: the target controls part of the text,
// and PostgreSQL refuses invalid UTF-8 (the result would never be stored).
func capText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
