package notify_test

// Workplace rule (see internal/netguard): tests send packets to loopback only.
// Non-loopback addresses are dialled only through a policy that refuses them
// before the connect system call, after checking that it does.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/netguard"
	"github.com/beaconhq/beacon/internal/notify"
)

var (
	secret = []byte("whsec_test-secret-do-not-leak")
	t0     = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"test"}`)
	header := notify.Sign(t0, body, secret)
	require.Regexp(t, `^t=\d+,v1=[0-9a-f]{64}$`, header)

	const tolerance = 5 * time.Minute
	require.NoError(t, notify.Verify(secret, header, body, t0, tolerance))
	rewritten, err := strconv.ParseInt("1"+strconv.FormatInt(t0.Unix(), 10), 10, 64)
	require.NoError(t, err)
	require.NoError(t, notify.Verify(secret, header, body, t0.Add(tolerance), tolerance), "at the edge of the window")
	require.NoError(t, notify.Verify(secret, header, body, t0.Add(-tolerance), tolerance), "receiver's clock behind")

	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, header, []byte(`{"event":"test "}`), t0, notify.ErrSignatureMismatch},
		{"other secret", []byte("whsec_other"), header, body, t0, notify.ErrSignatureMismatch},
		{"replayed later", secret, header, body, t0.Add(tolerance + time.Second), notify.ErrSignatureTimestamp},
		{"from the future", secret, header, body, t0.Add(-tolerance - time.Second), notify.ErrSignatureTimestamp},
		// Moving the timestamp into the window invalidates the signature: it is signed.
		{"timestamp rewritten", secret, strings.Replace(header, "t=", "t=1", 1), body, time.Unix(rewritten, 0), notify.ErrSignatureMismatch},
		{"empty", secret, "", body, t0, notify.ErrSignatureMalformed},
		{"no v1", secret, "t=" + header[2:12], body, t0, notify.ErrSignatureMalformed},
		{"no t", secret, header[strings.Index(header, "v1="):], body, t0, notify.ErrSignatureMalformed},
		{"two t", secret, header + ",t=1", body, t0, notify.ErrSignatureMalformed},
		{"short v1", secret, header + "00", body, t0, notify.ErrSignatureMalformed},
		{"not hex", secret, header[:len(header)-1] + "z", body, t0, notify.ErrSignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := notify.Verify(tt.secret, tt.header, tt.body, tt.now, tolerance)
			require.ErrorIs(t, err, tt.want, "header %q", tt.header)
		})
	}
}

func TestVerifyDuringRotation(t *testing.T) {
	t.Parallel()
	body := []byte(`{}`)
	old, next := []byte("whsec_old"), []byte("whsec_new")
	header := notify.Sign(t0, body, old, next)
	require.Equal(t, 2, strings.Count(header, "v1="))
	require.NoError(t, notify.Verify(old, header, body, t0, time.Minute))
	require.NoError(t, notify.Verify(next, header, body, t0, time.Minute))
	require.ErrorIs(t, notify.Verify([]byte("whsec_third"), header, body, t0, time.Minute), notify.ErrSignatureMismatch)
	// Schemes other than v1 (a future v2) are ignored, not refused.
	require.NoError(t, notify.Verify(old, header+",v2=abc", body, t0, time.Minute))
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := notify.NewSecret()
	require.NoError(t, err)
	b, err := notify.NewSecret()
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.Regexp(t, `^whsec_[A-Za-z0-9_-]{43}$`, a) // 32 bytes, unpadded base64url
}

// loopbackClient may reach the test servers on 127.0.0.1 (and nothing else
// that is not public).
func loopbackClient() *http.Client {
	return netguard.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).HTTPClient(netguard.ClientOptions{})
}

type received struct {
	header http.Header
	body   []byte
}

func TestWebhookDelivers(t *testing.T) {
	t.Parallel()
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	wh := &notify.Webhook{Client: loopbackClient(), UserAgent: "Beacon-Webhook/test", Now: func() time.Time { return t0 }}
	m := notify.Message{Event: "incident.opened", ID: "dlv_1", Subject: "unused", Text: "unused", Payload: map[string]any{"monitor": "api", "n": 2}}
	require.NoError(t, wh.Send(t.Context(), srv.URL+"/hook?token=abc", secret, m))

	r := <-got
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "Beacon-Webhook/test", r.header.Get("User-Agent"))
	require.Equal(t, "incident.opened", r.header.Get("Beacon-Event"))
	require.Equal(t, "dlv_1", r.header.Get("Beacon-Delivery"))
	require.NoError(t, notify.Verify(secret, r.header.Get("Beacon-Signature"), r.body, t0.Add(time.Second), 5*time.Minute))
	require.JSONEq(t, `{"event":"incident.opened","id":"dlv_1","sent_at":"2026-12-02T10:00:00Z","data":{"monitor":"api","n":2}}`, string(r.body))
}

func TestWebhookResponses(t *testing.T) {
	t.Parallel()
	var redirectedHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirectedHits.Add(1)
	}))
	t.Cleanup(target.Close)

	tests := []struct {
		status    int
		body      string
		permanent bool
		want      string // in the error
	}{
		{status: 200},
		{status: 202},
		{status: 500, body: "database on fire", want: "500 Internal Server Error: database on fire"},
		{status: 503, want: "503 Service Unavailable"},
		{status: 408, want: "408 Request Timeout"},
		{status: 429, want: "429 Too Many Requests"},
		{status: 400, body: `{"error":"bad"}`, permanent: true, want: `400 Bad Request: {"error":"bad"}`},
		{status: 401, permanent: true, want: "401 Unauthorized"},
		{status: 404, body: "no route for POST /services/T0K3N?token=s3cret", permanent: true, want: "404 Not Found: no route for POST …?…"},
		{status: 410, permanent: true, want: "410 Gone"},
		{status: 302, permanent: true, want: "redirected (302 Found): webhooks are not redirected"},
		{status: 307, permanent: true, want: "redirected (307 Temporary Redirect)"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.status >= 300 && tt.status < 400 {
					w.Header().Set("Location", target.URL+"/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)

			// Credentials in userinfo, path and query must stay out of errors.
			u := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "/services/T0K3N?token=s3cret"
			err := (&notify.Webhook{Client: loopbackClient()}).Send(t.Context(), u, secret, notify.Message{Event: "test", ID: "dlv_2"})
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, tt.permanent, notify.IsPermanent(err), "permanent? %v", err)
			require.Contains(t, err.Error(), tt.want)
			require.Contains(t, err.Error(), "webhook http://127.0.0.1:")
			for _, leak := range []string{"pa55word", "T0K3N", "s3cret", string(secret)} {
				require.NotContains(t, err.Error(), leak)
			}
		})
	}
	require.Zero(t, redirectedHits.Load(), "a redirect was followed")
}

func TestWebhookBoundsTheResponse(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, strings.Repeat("\x1b[31mx\n", 1<<20))
	}))
	t.Cleanup(srv.Close)
	err := (&notify.Webhook{Client: loopbackClient()}).Send(t.Context(), srv.URL, secret, notify.Message{Event: "test"})
	require.Error(t, err)
	require.False(t, notify.IsPermanent(err))
	require.Less(t, len(err.Error()), 400, "the error quotes only the start of the body: %s", err)
	require.NotContains(t, err.Error(), "\x1b")
	require.NotContains(t, err.Error(), "\n")
}

func TestWebhookHonoursTheDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// Never answers: waits for the client to hang up or the test to end.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := (&notify.Webhook{Client: loopbackClient()}).Send(ctx, srv.URL+"/?token=s3cret", secret, notify.Message{Event: "test"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, notify.IsPermanent(err), "a timeout is worth retrying: %v", err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestWebhookNetworkErrorIsRetryable(t *testing.T) {
	t.Parallel()
	// A port nothing listens on (any more).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	err = (&notify.Webhook{Client: loopbackClient()}).Send(t.Context(), "http://"+addr+"/", secret, notify.Message{Event: "test"})
	require.Error(t, err)
	require.False(t, notify.IsPermanent(err), "connection refused is worth retrying: %v", err)
}

func TestWebhookRefusedByNetworkPolicy(t *testing.T) {
	t.Parallel()
	policy := netguard.NewPolicy(nil)
	for _, addr := range []string{"169.254.169.254", "127.0.0.1"} {
		// Never dialled: the policy refuses it before connect.
		require.ErrorIs(t, policy.Check(netip.MustParseAddr(addr)), netguard.ErrRefused, "the test relies on %s being refused", addr)
	}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)

	tests := []struct {
		name   string
		client *http.Client
		url    string
		reason string
	}{
		{"metadata", policy.HTTPClient(netguard.ClientOptions{}), "http://169.254.169.254/latest/meta-data/", "169.254.169.254: cloud metadata address"},
		{"loopback", policy.HTTPClient(netguard.ClientOptions{}), srv.URL, "127.0.0.1: loopback address"},
		{"default client", nil, srv.URL, "127.0.0.1: loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := (&notify.Webhook{Client: tt.client}).Send(t.Context(), tt.url, secret, notify.Message{Event: "test"})
			require.ErrorIs(t, err, netguard.ErrRefused)
			require.True(t, notify.IsPermanent(err), "a refused destination stays refused: %v", err)
			require.Contains(t, err.Error(), "refused to connect to "+tt.reason)
		})
	}
	require.Zero(t, hits.Load())
}

func TestWebhookRefusesBadInput(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	wh := &notify.Webhook{Client: loopbackClient()}

	tests := []struct {
		name   string
		url    string
		secret []byte
		m      notify.Message
		want   string
	}{
		{"header injection in event", srv.URL, secret, notify.Message{Event: "test\r\nX-Injected: 1"}, "event contains a line break"},
		{"header injection in id", srv.URL, secret, notify.Message{Event: "test", ID: "1\nX-Injected: 1"}, "delivery id contains a line break"},
		{"no secret", srv.URL, nil, notify.Message{Event: "test"}, "empty signing secret"},
		{"other scheme", "ftp://127.0.0.1/x?token=s3cret", secret, notify.Message{Event: "test"}, "not an absolute http(s) URL"},
		{"relative", "/hook?token=s3cret", secret, notify.Message{Event: "test"}, "not an absolute http(s) URL"},
		{"unparsable", "http://[::1/?token=s3cret", secret, notify.Message{Event: "test"}, "not an absolute http(s) URL"},
		{"payload not JSON", srv.URL, secret, notify.Message{Event: "test", Payload: func() {}}, "encode payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := wh.Send(t.Context(), tt.url, tt.secret, tt.m)
			require.True(t, notify.IsPermanent(err), "%v", err)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
	require.Zero(t, hits.Load())
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	require.False(t, notify.IsPermanent(nil))
	require.False(t, notify.IsPermanent(errors.New("x")))
	p := &notify.PermanentError{Err: io.EOF}
	require.True(t, notify.IsPermanent(p))
	require.True(t, notify.IsPermanent(errors.Join(errors.New("deliver"), p)))
	require.ErrorIs(t, p, io.EOF)
}

// A receiver checks the signature on the raw body before it decodes it.
func ExampleVerify() {
	body := []byte(`{"event":"test","id":"dlv_1","sent_at":"2026-12-02T10:00:00Z","data":null}`)
	sent := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	header := notify.Sign(sent, body, []byte("whsec_example"))

	// In the receiver: the raw body, the header, the shared secret.
	if err := notify.Verify([]byte("whsec_example"), header, body, sent.Add(3*time.Second), 5*time.Minute); err != nil {
		panic(err)
	}
	var env struct{ Event, ID string }
	if err := json.Unmarshal(body, &env); err != nil {
		panic(err)
	}
	fmt.Println(env.Event, env.ID)
	// Output: test dlv_1
}
