package monitors_test

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/netguard"
)

// Every URL a failing check requests carries this query: it may hold a
// secret, so it must never appear in a result's error text.
const secretQuery = "?token=SECRET"

// target is an httptest server on 127.0.0.1 that counts its requests.
type target struct {
	*httptest.Server
	hits atomic.Int32
}

func newTarget(t *testing.T, h http.HandlerFunc) *target {
	t.Helper()
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(tg.Close)
	return tg
}

func statusHandler(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// monitorFor returns a monitor of url, valid as stored monitors are.
func monitorFor(t *testing.T, url string) monitors.Monitor {
	t.Helper()
	m := monitors.Monitor{ID: 1, Spec: monitors.Spec{Name: "target", URL: url, Enabled: true}}
	m.Normalize()
	require.NoError(t, m.Validate())
	return m
}

// requireFailure asserts a failed check of the given kind whose error text
// gives nothing of the URL's query away.
func requireFailure(t *testing.T, r monitors.Result, kind string) {
	t.Helper()
	require.False(t, r.OK)
	require.Equal(t, kind, r.ErrorKind, "error: %s", r.Error)
	require.NotEmpty(t, r.Error)
	require.NotContains(t, r.Error, "SECRET")
	require.NotContains(t, r.Error, "token=")
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestCheckerUp(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	checkedAt := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	c := loopbackClient()
	c.Now = func() time.Time { return checkedAt }

	m := monitorFor(t, tg.URL+"/health")
	m.ID = 42
	r := c.Check(context.Background(), m)

	require.True(t, r.OK, "error: %s %s", r.ErrorKind, r.Error)
	require.Equal(t, int64(42), r.MonitorID)
	require.Equal(t, checkedAt, r.CheckedAt)
	require.NotNil(t, r.StatusCode)
	require.Equal(t, http.StatusOK, *r.StatusCode)
	require.Empty(t, r.ErrorKind)
	require.Empty(t, r.Error)
	require.Positive(t, r.DurationMS)
	require.Equal(t, int32(1), tg.hits.Load())
}

func TestCheckerStatus(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		status   int
		expected []int
		ok       bool
	}{
		{"200", http.StatusOK, nil, true},
		{"204", http.StatusNoContent, nil, true},
		{"500", http.StatusInternalServerError, nil, false},
		{"404", http.StatusNotFound, nil, false},
		{"ExpectedNotFound", http.StatusNotFound, []int{404}, true},
		{"ExpectedListExcludes200", http.StatusOK, []int{201, 404}, false},
		// Not followed: a 304 has no Location and is the response.
		{"NotModified", http.StatusNotModified, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, statusHandler(tt.status))
			m := monitorFor(t, tg.URL+"/"+secretQuery)
			m.ExpectedStatus = tt.expected

			r := loopbackClient().Check(context.Background(), m)

			require.NotNil(t, r.StatusCode)
			require.Equal(t, tt.status, *r.StatusCode)
			if tt.ok {
				require.True(t, r.OK, "error: %s %s", r.ErrorKind, r.Error)
				require.Empty(t, r.ErrorKind)
				return
			}
			requireFailure(t, r, "status")
			require.Equal(t, "unexpected status "+http.StatusText(tt.status), r.Error)
		})
	}
}

func TestCheckerTimeout(t *testing.T) {
	t.Parallel()

	// The handler would hold the request far longer than the monitor's
	// timeout; the check must give up at the timeout.
	const handlerMax = 10 * time.Second

	t.Run("Headers", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(handlerMax):
			}
		})
		m := monitorFor(t, tg.URL+"/slow"+secretQuery)
		m.TimeoutMS = 200

		start := time.Now()
		r := loopbackClient().Check(context.Background(), m)
		elapsed := time.Since(start)

		requireFailure(t, r, "timeout")
		require.Nil(t, r.StatusCode)
		require.GreaterOrEqual(t, elapsed, 200*time.Millisecond)
		require.Less(t, elapsed, 3*time.Second, "the check must end at its timeout, not the handler's")
		require.InDelta(t, 200, r.DurationMS, 2000)
	})

	t.Run("Body", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(handlerMax):
			}
		})
		m := monitorFor(t, tg.URL+"/slow-body"+secretQuery)
		m.TimeoutMS = 200

		start := time.Now()
		r := loopbackClient().Check(context.Background(), m)
		elapsed := time.Since(start)

		// A page that never finishes loading is not up, whatever its status.
		requireFailure(t, r, "timeout")
		require.Less(t, elapsed, 3*time.Second)
	})
}

func TestCheckerEndlessBody(t *testing.T) {
	t.Parallel()
	// The check reads a bounded prefix of the body and moves on; reading it
	// all would run into the timeout.
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	m := monitorFor(t, tg.URL+"/endless")
	m.TimeoutMS = 5000

	r := loopbackClient().Check(context.Background(), m)
	require.True(t, r.OK, "error: %s %s", r.ErrorKind, r.Error)
	require.Less(t, r.DurationMS, 4000.0)
}

func TestCheckerRedirects(t *testing.T) {
	t.Parallel()

	t.Run("Followed", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/start":
				http.Redirect(w, r, "/middle", http.StatusFound)
			case "/middle":
				http.Redirect(w, r, "/end", http.StatusMovedPermanently)
			default:
				w.WriteHeader(http.StatusOK)
			}
		})
		r := loopbackClient().Check(context.Background(), monitorFor(t, tg.URL+"/start"))
		require.True(t, r.OK, "error: %s %s", r.ErrorKind, r.Error)
		require.Equal(t, http.StatusOK, *r.StatusCode)
		require.Equal(t, int32(3), tg.hits.Load())
	})

	t.Run("Loop", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/loop"+secretQuery, http.StatusFound)
		})
		r := loopbackClient().Check(context.Background(), monitorFor(t, tg.URL+"/loop"+secretQuery))
		requireFailure(t, r, "redirect")
		// The first request and DefaultMaxRedirects redirects, then it stops.
		require.Equal(t, int32(netguard.DefaultMaxRedirects+1), tg.hits.Load())
	})

	t.Run("Scheme", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "ftp://127.0.0.1/file"+secretQuery)
			w.WriteHeader(http.StatusFound)
		})
		r := loopbackClient().Check(context.Background(), monitorFor(t, tg.URL+"/"+secretQuery))
		requireFailure(t, r, "redirect")
	})

	// Each hop is dialled through the policy: a public-looking first hop
	// cannot bounce the check to the metadata service. Refused in Control,
	// before connect: no packet is sent.
	t.Run("ToRefusedDestination", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/"+secretQuery, http.StatusFound)
		})
		r := loopbackClient().Check(context.Background(), monitorFor(t, tg.URL+"/"+secretQuery))
		requireFailure(t, r, "refused")
		require.Contains(t, r.Error, "cloud metadata address")
		require.Equal(t, int32(1), tg.hits.Load())
	})
}

func TestCheckerConnectRefused(t *testing.T) {
	t.Parallel()
	r := loopbackClient().Check(context.Background(), monitorFor(t, "http://"+closedPort(t)+"/health"+secretQuery))
	requireFailure(t, r, "connect")
	require.Nil(t, r.StatusCode)
}

func TestCheckerTLS(t *testing.T) {
	t.Parallel()

	t.Run("UnknownAuthority", func(t *testing.T) {
		t.Parallel()
		var hits atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
		srv.StartTLS()
		t.Cleanup(srv.Close)
		r := loopbackClient().Check(context.Background(), monitorFor(t, srv.URL+"/"+secretQuery))
		requireFailure(t, r, "tls")
		require.Zero(t, hits.Load())
	})

	t.Run("NotTLS", func(t *testing.T) {
		t.Parallel()
		addr := rawServer(t, false, "garbage\r\n\r\n")
		r := loopbackClient().Check(context.Background(), monitorFor(t, "https://"+addr+"/"+secretQuery))
		requireFailure(t, r, "tls")
	})

	// net/http replaces the TLS error with its own plain one here, so this
	// is classified as a request error, not a TLS one.
	t.Run("PlainHTTPServer", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		r := loopbackClient().Check(context.Background(), monitorFor(t, strings.Replace(tg.URL, "http://", "https://", 1)+"/"+secretQuery))
		requireFailure(t, r, "request")
		require.Equal(t, "http: server gave HTTP response to HTTPS client", r.Error)
	})
}

// rawServer accepts loopback connections, writes reply to each (after
// reading the request's head, if readRequest) and drains it until the client
// hangs up, and returns its address.
func rawServer(t *testing.T, readRequest bool, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				for readRequest {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = conn.Write([]byte(reply))
				_, _ = io.Copy(io.Discard, br)
			})
		}
	})
	return l.Addr().String()
}

func TestCheckerMalformedResponse(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, true, "garbage\r\n\r\n")
	r := loopbackClient().Check(context.Background(), monitorFor(t, "http://"+addr+"/"+secretQuery))
	requireFailure(t, r, "request")
	require.Contains(t, r.Error, "malformed HTTP response")
}

func TestCheckerUnbuildableRequest(t *testing.T) {
	t.Parallel()
	// Stored monitors are validated; this one is not, and sends nothing.
	m := monitors.Monitor{ID: 1, Spec: monitors.Spec{URL: "http://exa mple.com/" + secretQuery, Method: "GET", TimeoutMS: 1000}}
	r := loopbackClient().Check(context.Background(), m)
	requireFailure(t, r, "request")
}

func TestCheckerMethods(t *testing.T) {
	t.Parallel()
	for _, method := range monitors.Methods {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			var got atomic.Value
			tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
				got.Store(r.Method)
				_, _ = w.Write([]byte("body"))
			})
			m := monitorFor(t, tg.URL+"/")
			m.Method = method

			r := loopbackClient().Check(context.Background(), m)
			require.True(t, r.OK, "error: %s %s", r.ErrorKind, r.Error)
			require.Equal(t, method, got.Load())
			require.Equal(t, int32(1), tg.hits.Load())
		})
	}
}

// localhostFromHostsFile skips the test unless "localhost" resolves from
// /etc/hosts before DNS: a DNS query would be traffic to a non-loopback
// resolver.
func localhostFromHostsFile(t *testing.T) {
	t.Helper()
	nss, err := os.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		t.Skip("no /etc/nsswitch.conf: localhost might be looked up in DNS")
	}
	filesFirst := false
	for _, line := range strings.Split(string(nss), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "hosts:" {
			filesFirst = f[1] == "files"
		}
	}
	hosts, err := os.ReadFile("/etc/hosts")
	if !filesFirst || err != nil {
		t.Skip("hosts are not looked up in /etc/hosts first")
	}
	for _, line := range strings.Split(string(hosts), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[0], "127.") && slices.Contains(f[1:], "localhost") {
			return
		}
	}
	t.Skip("/etc/hosts does not map localhost to loopback")
}

func TestCheckerSSRF(t *testing.T) {
	t.Parallel()

	// The production policy: no allow-list.
	strict := func() *monitors.Checker {
		return &monitors.Checker{Client: netguard.NewPolicy(nil).HTTPClient(netguard.ClientOptions{})}
	}

	t.Run("LoopbackLiteral", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		r := strict().Check(context.Background(), monitorFor(t, tg.URL+"/admin"+secretQuery))
		requireFailure(t, r, "refused")
		require.Contains(t, r.Error, "loopback address")
		require.Contains(t, r.Error, "BEACON_CHECK_ALLOW_CIDRS", "the refusal says how to allow it")
		require.Zero(t, tg.hits.Load(), "the refused target must never see the request")
	})

	// A name that resolves to loopback: the DNS-rebinding case. The host
	// string looks harmless; the dialled address is what is judged.
	t.Run("LocalhostName", func(t *testing.T) {
		t.Parallel()
		localhostFromHostsFile(t)
		tg := newTarget(t, statusHandler(http.StatusOK))
		_, port, err := net.SplitHostPort(tg.Listener.Addr().String())
		require.NoError(t, err)
		r := strict().Check(context.Background(), monitorFor(t, "http://localhost:"+port+"/admin"+secretQuery))
		requireFailure(t, r, "refused")
		require.Zero(t, tg.hits.Load(), "the refused target must never see the request")
	})

	// Refused in the dialer's Control hook, before connect(): these tests
	// send no packet to these addresses.
	for _, tt := range []struct{ name, url, reason string }{
		{"Metadata", "http://169.254.169.254/latest/meta-data/" + secretQuery, "cloud metadata address"},
		{"Private", "http://10.0.0.1/" + secretQuery, "private address"},
		{"IPv6Loopback", "http://[::1]:9/" + secretQuery, "loopback address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := strict().Check(context.Background(), monitorFor(t, tt.url))
			requireFailure(t, r, "refused")
			require.Contains(t, r.Error, tt.reason)
			require.Less(t, time.Since(start), time.Second, "a refusal is immediate")
		})
	}
}

// A target controls part of some error texts (a malformed status line is
// quoted back): a huge one is capped, so it neither bloats check_results nor
// overflows the NOTIFY payload (at most 8000 bytes) that carries the result.
func TestCheckerLongErrorIsCapped(t *testing.T) {
	t.Parallel()

	t.Run("ASCII", func(t *testing.T) {
		t.Parallel()
		addr := rawServer(t, true, strings.Repeat("garbage", 2000)+"\r\n\r\n")
		r := loopbackClient().Check(context.Background(), monitorFor(t, "http://"+addr+"/"+secretQuery))
		requireFailure(t, r, "request")
		require.Contains(t, r.Error, "malformed HTTP response")
		require.LessOrEqual(t, len(r.Error), 500+len("…"))
		require.True(t, strings.HasSuffix(r.Error, "…"), "a capped text says so: ...%q", r.Error[len(r.Error)-10:])

		// Stored and announced whole.
		b := setup(t)
		conn := listen(t, b)
		m := mustCreate(t, b, validSpec("api"))
		r.MonitorID = m.ID
		jobID := int64(1)
		r.JobID = &jobID
		mustRecord(t, b, r)
		got, err := b.svc.CheckResult(context.Background(), jobID)
		require.NoError(t, err)
		require.Equal(t, r.Error, got.Error)
		ev := nextEvent(t, conn)
		require.NotNil(t, ev.Result)
		require.Equal(t, r.Error, ev.Result.Error)
	})

	// Cut on a character boundary: PostgreSQL refuses invalid UTF-8, so a
	// cut character would make the result unstorable (the job fails, is
	// retried, and the target's failure is never recorded).
	t.Run("Multibyte", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))
		// A three-byte character at each alignment: a byte-wise cut splits
		// it at two of the three.
		for pad := range 3 {
			addr := rawServer(t, true, strings.Repeat("x", pad)+strings.Repeat("€", 1000)+"\r\n\r\n")
			r := loopbackClient().Check(context.Background(), monitorFor(t, "http://"+addr+"/"+secretQuery))
			requireFailure(t, r, "request")
			require.LessOrEqual(t, len(r.Error), 500+len("…"))
			require.True(t, utf8.ValidString(r.Error), "pad %d: error text is not valid UTF-8: ...%q", pad, r.Error[len(r.Error)-10:])

			r.MonitorID = m.ID
			mustRecord(t, b, r)
		}
	})
}
