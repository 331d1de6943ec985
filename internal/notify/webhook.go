package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/beaconhq/beacon/internal/netguard"
)

// Webhook headers.
const (
	HeaderEvent     = "Beacon-Event"
	HeaderDelivery  = "Beacon-Delivery"
	HeaderSignature = "Beacon-Signature"
)

// maxResponseBody bounds what is read of a receiver's response: enough for
// an error message, not enough for a receiver to make us buffer a lot.
const maxResponseBody = 4 << 10

// Webhook POSTs a signed JSON envelope to a URL:
//
//	{"event": "...", "id": "...", "sent_at": "RFC 3339", "data": <Payload>}
//
// with the headers Beacon-Event, Beacon-Delivery and Beacon-Signature (see
// Sign). A Webhook is safe for concurrent use; its fields must not change
// once it is in use.
type Webhook struct {
	// Client sends the request. Build it with (*netguard.Policy).HTTPClient,
	// so that the outbound network policy applies to the user's URL. Nil
	// means a client under the default policy (public addresses only).
	// Redirects are never followed, whatever the client's CheckRedirect: a
	// 3xx response is a permanent failure.
	Client *http.Client
	// UserAgent, if set, is sent as User-Agent.
	UserAgent string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type envelope struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	SentAt string `json:"sent_at"`
	Data   any    `json:"data"`
}

// Send delivers m to rawURL, signed with secret. Bound it with a context
// deadline: the client has no overall timeout. A 2xx response means
// delivered. The error matches IsPermanent for an invalid URL or message, a
// destination refused by the network policy, a redirect, and any 4xx response
// except 408 and 429; every other failure is worth retrying.
func (w *Webhook) Send(ctx context.Context, rawURL string, secret []byte, m Message) error {
	if len(secret) == 0 {
		return permanentf("webhook: empty signing secret")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// url.Parse's error quotes the whole URL: leave it out.
		return permanentf("webhook %s: not an absolute http(s) URL", redactURL(rawURL))
	}
	where := redactURL(rawURL)
	for _, h := range []struct{ name, v string }{{"event", m.Event}, {"delivery id", m.ID}} {
		if err := checkHeaderValue(h.name, h.v); err != nil {
			return fmt.Errorf("webhook %s: %w", where, err)
		}
	}

	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	sent := now()
	body, err := json.Marshal(envelope{Event: m.Event, ID: m.ID, SentAt: sent.UTC().Format(time.RFC3339), Data: m.Payload})
	if err != nil {
		return permanentf("webhook %s: encode payload: %w", where, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return permanentf("webhook %s: %w", where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if w.UserAgent != "" {
		req.Header.Set("User-Agent", w.UserAgent)
	}
	req.Header.Set(HeaderEvent, m.Event)
	req.Header.Set(HeaderDelivery, m.ID)
	req.Header.Set(HeaderSignature, Sign(sent, body, secret))

	resp, err := w.client().Do(req)
	if err != nil {
		// *url.Error quotes the full URL, query included: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, netguard.ErrRefused) {
			return permanentf("webhook %s: %w", where, err)
		}
		return fmt.Errorf("webhook %s: %w", where, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return permanentf("webhook %s: redirected (%s): webhooks are not redirected, use the final URL", where, resp.Status)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return fmt.Errorf("webhook %s: %s%s", where, resp.Status, describeBody(snippet, u))
	default:
		return permanentf("webhook %s: %s%s", where, resp.Status, describeBody(snippet, u))
	}
}

// client returns a copy of the configured client that does not follow
// redirects (the copy leaves the caller's client alone).
func (w *Webhook) client() *http.Client {
	var c http.Client
	if w.Client != nil {
		c = *w.Client
	} else {
		c = *netguard.NewPolicy(nil).HTTPClient(netguard.ClientOptions{})
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// describeBody renders the start of a response body for an error message:
// one line of printable characters, at most 200 of them, without the
// credentials of u that error pages like to echo ("no route /hook/T0K3N").
func describeBody(b []byte, u *url.URL) string {
	s := string(b)
	for _, part := range []string{u.User.String(), u.RawQuery, u.EscapedPath(), u.Path} {
		if len(part) > 1 {
			s = strings.ReplaceAll(s, part, "…")
		}
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return ": " + s
}

// Sign returns the Beacon-Signature header value for body sent at t:
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>.<body>")>
//
// with one v1 per secret, so that receivers keep verifying while a secret is
// being rotated. The timestamp is signed along with the body, so a captured
// request cannot be replayed once it is older than the receiver's tolerance.
func Sign(t time.Time, body []byte, secrets ...[]byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, secret := range secrets {
		b.WriteString(",v1=" + hex.EncodeToString(mac(secret, ts, body)))
	}
	return b.String()
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Errors returned by Verify.
var (
	ErrSignatureMalformed = errors.New("notify: malformed signature header")
	ErrSignatureTimestamp = errors.New("notify: signature timestamp outside the tolerance")
	ErrSignatureMismatch  = errors.New("notify: no signature matches")
)

// Verify checks a Beacon-Signature header against the raw request body, as
// a receiver does: the timestamp must be within tolerance of now (either
// way), and one of the v1 signatures must be the HMAC of the timestamp and
// body under secret. Unknown schemes in the header are ignored. It returns
// nil or an error matching one of the ErrSignature* values.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrSignatureMalformed
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrSignatureMalformed
			}
			sigs = append(sigs, sig)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureTimestamp
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}

// SecretPrefix starts every secret NewSecret makes, so that a leaked one is
// recognisable (by people and by secret scanners).
const SecretPrefix = "whsec_"

// NewSecret returns a new webhook signing secret: SecretPrefix and 32 random
// bytes in unpadded base64url. The HMAC key is the whole string, prefix
// included, as the user copies it.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("notify: new secret: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
