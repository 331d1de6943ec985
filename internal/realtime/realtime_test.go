package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/pgtest"
	"github.com/beaconhq/beacon/internal/realtime"
)

// fakeAuth accepts "Bearer user-<id>". Authentication is the auth
// package's business; here only who the caller is matters.
func fakeAuth(r *http.Request) (auth.Principal, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	idText, ok := strings.CutPrefix(token, "user-")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil || id <= 0 {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return auth.Principal{UserID: id, Role: auth.RoleMember}, nil
}

func token(user int64) string { return fmt.Sprintf("user-%d", user) }

// instance is one API replica: its own pool, hub and HTTP server.
type instance struct {
	pool *pgxpool.Pool
	srv  *httptest.Server
	url  string // ws:// URL of the events endpoint
	stop func() // stops the hub (also done at cleanup)
}

type instanceOpts struct {
	hub realtime.Options
	// authenticate replaces fakeAuth when set.
	authenticate func(*http.Request) (auth.Principal, error)
	// listener, when set, wraps the server's listener.
	listener func(net.Listener) net.Listener
}

func newPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), dbURL, nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func startInstance(t *testing.T, pool *pgxpool.Pool, o instanceOpts) *instance {
	t.Helper()
	hub := realtime.NewHub(pool, slog.New(slog.NewTextHandler(t.Output(), nil)), o.hub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("hub did not stop")
		}
	})
	t.Cleanup(stop)

	authenticate := fakeAuth
	if o.authenticate != nil {
		authenticate = o.authenticate
	}
	srv := httptest.NewUnstartedServer(realtime.Handler(hub, authenticate))
	if o.listener != nil {
		srv.Listener = o.listener(srv.Listener)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &instance{pool: pool, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/events", stop: stop}
}

// waitListening waits until n hubs listen on the database: a NOTIFY sent
// before would reach nobody.
func waitListening(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var count int
		err := pool.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'idle' AND query LIKE 'LISTEN%'`).Scan(&count)
		return err == nil && count == n
	}, 10*time.Second, 10*time.Millisecond)
}

func notify(t *testing.T, pool *pgxpool.Pool, payload string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, realtime.Channel, payload)
	require.NoError(t, err)
}

func createUser(t *testing.T, pool *pgxpool.Pool, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO users (email, password_hash, role) VALUES ($1, 'x', 'member') RETURNING id`, email).Scan(&id))
	return id
}

func dial(t *testing.T, url string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, opts)
	if conn != nil {
		t.Cleanup(func() { _ = conn.CloseNow() })
	}
	return conn, resp, err
}

func bearer(user int64) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token(user)}}}
}

// client reads continuously, as a browser does (which also answers pings),
// into a channel the test selects on.
type client struct {
	conn *websocket.Conn
	msgs chan []byte
	err  chan error // the error that ended reading
}

func newClient(t *testing.T, conn *websocket.Conn) *client {
	t.Helper()
	c := &client{conn: conn, msgs: make(chan []byte, 1024), err: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, msg, err := conn.Read(context.Background())
			if err != nil {
				c.err <- err
				return
			}
			c.msgs <- msg
		}
	}()
	t.Cleanup(func() {
		_ = conn.CloseNow()
		<-done
	})
	return c
}

// connect opens a websocket as user and checks the hello.
func connect(t *testing.T, in *instance, user int64) *client {
	t.Helper()
	conn, _, err := dial(t, in.url, bearer(user))
	require.NoError(t, err)
	c := newClient(t, conn)
	hello := c.next(t)
	require.Equal(t, "hello", hello["type"])
	require.EqualValues(t, user, hello["user_id"])
	return c
}

func (c *client) nextRaw(t *testing.T, within time.Duration) []byte {
	t.Helper()
	select {
	case msg := <-c.msgs:
		return msg
	case err := <-c.err:
		t.Fatalf("connection ended: %v", err)
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
	}
	return nil
}

func (c *client) next(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(c.nextRaw(t, 5*time.Second), &m))
	return m
}

func (c *client) requireNothing(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case msg := <-c.msgs:
		t.Fatalf("unexpected message %s", msg)
	case err := <-c.err:
		t.Fatalf("connection ended: %v", err)
	case <-time.After(d):
	}
}

func TestEventsReachClientsOfEveryReplica(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	poolA, poolB := newPool(t, dbURL), newPool(t, dbURL)
	a := startInstance(t, poolA, instanceOpts{})
	b := startInstance(t, poolB, instanceOpts{})
	waitListening(t, poolA, 2)

	owner := createUser(t, poolB, "owner@example.com")
	other := createUser(t, poolB, "other@example.com")

	onA := connect(t, a, owner)
	onB := connect(t, b, owner)
	otherOnA := connect(t, a, other)

	// A bare NOTIFY through B reaches the owner on A (and on B), verbatim.
	payload := fmt.Sprintf(`{"type":"check_result","owner_id":%d,"monitor_id":7}`, owner)
	notify(t, poolB, payload)
	require.JSONEq(t, payload, string(onA.nextRaw(t, 5*time.Second)))
	require.JSONEq(t, payload, string(onB.nextRaw(t, 5*time.Second)))

	// So does an event published by B in a transaction, once it commits.
	ctx := context.Background()
	tx, err := poolB.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	require.NoError(t, realtime.Publish(ctx, tx, realtime.Event{
		Type: "thing_changed", OwnerID: owner, Data: map[string]any{"thing_id": 7, "state": "up"},
	}))
	onA.requireNothing(t, 100*time.Millisecond) // not before commit
	require.NoError(t, tx.Commit(ctx))
	ev := onA.next(t)
	require.Equal(t, "thing_changed", ev["type"])
	require.EqualValues(t, owner, ev["owner_id"])
	require.EqualValues(t, 7, ev["thing_id"])
	require.Equal(t, "up", ev["state"])
	require.Equal(t, ev, onB.next(t))

	// Nothing of it reaches another user.
	otherOnA.requireNothing(t, 300*time.Millisecond)
}

// smallBuffers makes a connection that is not read stall after a few
// kilobytes rather than after the megabytes loopback TCP would buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(4096)
	}
	return conn, err
}

func TestStalledClientIsDroppedWithoutDelayingOthers(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	// A long WriteTimeout: the stalled client must be dropped because its
	// buffer fills, not because a write to it timed out.
	in := startInstance(t, pool, instanceOpts{
		hub:      realtime.Options{Buffer: 2, WriteTimeout: 30 * time.Second},
		listener: func(l net.Listener) net.Listener { return smallBuffers{l} },
	})
	waitListening(t, pool, 1)
	user := createUser(t, pool, "user@example.com")

	// The stalled client never reads, and its socket buffers only 64 KiB.
	stalledOpts := bearer(user)
	stalledOpts.HTTPClient = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetReadBuffer(65536)
			}
			return conn, err
		},
	}}
	stalled, _, err := dial(t, in.url, stalledOpts)
	require.NoError(t, err)
	healthy := connect(t, in, user)

	// Each event waits for the healthy client to get the previous one, so
	// it never has more than one queued: only a stall could fill its buffer
	// of 2, and a hub that waited for the stalled client would stall it.
	const n = 200
	pad := strings.Repeat("x", 3000)
	start := time.Now()
	for i := range n {
		notify(t, pool, fmt.Sprintf(`{"type":"check_result","owner_id":%d,"monitor_id":%d,"pad":%q}`, user, i, pad))
		var ev map[string]any
		require.NoError(t, json.Unmarshal(healthy.nextRaw(t, 2*time.Second), &ev), "event %d", i)
		require.EqualValues(t, i, ev["monitor_id"], "events in order")
	}
	t.Logf("healthy client got %d events of %d bytes in %v", n, len(pad), time.Since(start))

	// The stalled client gets what was in flight, then is closed as too slow.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := 0
	for {
		_, _, err = stalled.Read(ctx)
		if err != nil {
			break
		}
		got++
	}
	require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "read error: %v", err)
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "too slow", ce.Reason)
	require.Less(t, got, n, "the stalled client was dropped before the end") // got counts the hello too
	t.Logf("stalled client got %d messages before it was dropped", got)

	healthy.requireNothing(t, 50*time.Millisecond) // still connected
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	in := startInstance(t, pool, instanceOpts{hub: realtime.Options{MaxConnsPerUser: 2}})

	requireProblem := func(t *testing.T, resp *http.Response, status int) {
		t.Helper()
		require.NotNil(t, resp)
		require.Equal(t, status, resp.StatusCode)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
		require.Empty(t, resp.Header.Get("Sec-WebSocket-Accept"), "no upgrade")
		var p struct {
			Title  string `json:"title"`
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
		require.Equal(t, http.StatusText(status), p.Title)
		require.Equal(t, status, p.Status)
		require.NotEmpty(t, p.Detail)
	}

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		_, resp, err := dial(t, in.url, nil)
		require.Error(t, err)
		requireProblem(t, resp, http.StatusUnauthorized)
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
	})
	t.Run("bad token", func(t *testing.T) {
		t.Parallel()
		_, resp, err := dial(t, in.url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer nope"}}})
		require.Error(t, err)
		requireProblem(t, resp, http.StatusUnauthorized)
		_, resp, err = dial(t, in.url+"?access_token=nope", nil)
		require.Error(t, err)
		requireProblem(t, resp, http.StatusUnauthorized)
	})
	t.Run("token in the query", func(t *testing.T) {
		t.Parallel()
		conn, _, err := dial(t, in.url+"?access_token="+token(3), nil)
		require.NoError(t, err)
		hello := newClient(t, conn).next(t)
		require.Equal(t, map[string]any{"type": "hello", "user_id": float64(3)}, hello)
	})
	t.Run("not a websocket", func(t *testing.T) {
		t.Parallel()
		req, err := http.NewRequest(http.MethodGet, in.srv.URL+"/v1/events", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token(4))
		resp, err := in.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		requireProblem(t, resp, http.StatusUpgradeRequired)
	})
	t.Run("cross-origin", func(t *testing.T) {
		t.Parallel()
		opts := bearer(8)
		opts.HTTPHeader.Set("Origin", "https://elsewhere.example")
		_, resp, err := dial(t, in.url, opts)
		require.Error(t, err)
		require.NotNil(t, resp)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("per-user limit", func(t *testing.T) {
		t.Parallel()
		const user = 5
		first := connect(t, in, user)
		connect(t, in, user)
		_, resp, err := dial(t, in.url, bearer(user))
		require.Error(t, err)
		requireProblem(t, resp, http.StatusTooManyRequests)
		connect(t, in, 6) // other users are not affected

		// Closing one frees its place.
		require.NoError(t, first.conn.Close(websocket.StatusNormalClosure, ""))
		require.Eventually(t, func() bool {
			conn, _, err := dial(t, in.url, bearer(user))
			return err == nil && conn != nil
		}, 5*time.Second, 20*time.Millisecond)
	})
	t.Run("per-user limit under concurrency", func(t *testing.T) {
		t.Parallel()
		const user, attempts = 7, 20
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			accepted []*websocket.Conn
			refused  int
		)
		for range attempts {
			wg.Go(func() {
				conn, resp, err := websocket.Dial(context.Background(), in.url, bearer(user))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					accepted = append(accepted, conn)
				} else if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
					refused++
				}
			})
		}
		wg.Wait()
		require.Len(t, accepted, 2)
		require.Equal(t, attempts-2, refused)

		// Every place is given back.
		for _, c := range accepted {
			require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
		}
		require.Eventually(t, func() bool {
			ok := true
			var conns []*websocket.Conn
			for range 2 {
				conn, _, err := dial(t, in.url, bearer(user))
				ok = ok && err == nil
				if conn != nil {
					conns = append(conns, conn)
				}
			}
			// Give back what this attempt took, or the next would fail too.
			for _, conn := range conns {
				_ = conn.Close(websocket.StatusNormalClosure, "")
			}
			return ok
		}, 5*time.Second, 20*time.Millisecond)
	})
}

func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	in := startInstance(t, pool, instanceOpts{})
	waitListening(t, pool, 1)
	c := connect(t, in, 1)

	var terminated int
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&terminated))
	require.Equal(t, 1, terminated)

	// The hub listens again, tells its clients that they may have missed
	// events, and delivers new ones.
	waitListening(t, pool, 1)
	require.Equal(t, map[string]any{"type": "resync"}, c.next(t))
	payload := `{"type":"check_result","owner_id":1,"monitor_id":7}`
	notify(t, pool, payload)
	require.JSONEq(t, payload, string(c.nextRaw(t, 5*time.Second)))
}

func TestPing(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))

	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		in := startInstance(t, pool, instanceOpts{hub: realtime.Options{PingInterval: 50 * time.Millisecond, WriteTimeout: time.Second}})
		c := connect(t, in, 1)
		c.requireNothing(t, 500*time.Millisecond)
		require.NoError(t, c.conn.Ping(context.Background()), "still connected")
	})
	t.Run("unanswered", func(t *testing.T) {
		t.Parallel()
		in := startInstance(t, pool, instanceOpts{hub: realtime.Options{
			PingInterval: 50 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxConnsPerUser: 1,
		}})
		// This client never reads, so it never answers a ping.
		silent, _, err := dial(t, in.url, bearer(2))
		require.NoError(t, err)
		// Its place is given back once the server closed it.
		require.Eventually(t, func() bool {
			_, _, err := dial(t, in.url, bearer(2))
			return err == nil
		}, 5*time.Second, 50*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for err == nil {
			_, _, err = silent.Read(ctx)
		}
		require.NotErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestShutdownClosesWebsockets(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	in := startInstance(t, pool, instanceOpts{})
	c := connect(t, in, 1)

	in.stop()
	select {
	case err := <-c.err:
		require.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "read error: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("websocket still open")
	}
	_, resp, err := dial(t, in.url, bearer(1))
	require.Error(t, err)
	require.NotNil(t, resp)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestIgnoresEventsWithoutOwner(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	in := startInstance(t, pool, instanceOpts{})
	waitListening(t, pool, 1)
	c := connect(t, in, 1)
	notify(t, pool, `{"type":"check_result","monitor_id":7}`)
	notify(t, pool, `not json`)
	c.requireNothing(t, 200*time.Millisecond)
}

func TestClientMessagesAreDiscarded(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	in := startInstance(t, pool, instanceOpts{})
	waitListening(t, pool, 1)
	c := connect(t, in, 1)
	ctx := context.Background()

	require.NoError(t, c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe"}`)))
	payload := `{"type":"check_result","owner_id":1,"monitor_id":7}`
	notify(t, pool, payload)
	require.JSONEq(t, payload, string(c.nextRaw(t, 5*time.Second)), "still served")

	// Beyond 4 KiB the server closes the connection.
	require.NoError(t, c.conn.Write(ctx, websocket.MessageText, make([]byte, 5<<10)))
	select {
	case err := <-c.err:
		require.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "read error: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("websocket still open")
	}
}

// A connection ends when the token it was opened with expires.
func TestConnectionEndsWithItsToken(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewURL(t))
	inst := startInstance(t, pool, instanceOpts{authenticate: func(r *http.Request) (auth.Principal, error) {
		p, err := fakeAuth(r)
		p.Expires = time.Now().Add(300 * time.Millisecond)
		return p, err
	}})
	conn, _, err := dial(t, inst.url, bearer(1))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, hello, err := conn.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(hello), `"hello"`)
	start := time.Now()
	_, _, err = conn.Read(ctx)
	require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "error: %v", err)
	require.Contains(t, err.Error(), "token expired")
	require.Less(t, time.Since(start), 4*time.Second)
}

func TestPublishRefusesWhatTheHubWouldDrop(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	for name, ev := range map[string]realtime.Event{
		"no owner":      {Type: "x"},
		"no type":       {OwnerID: 1},
		"not an object": {Type: "x", OwnerID: 1, Data: []int{1}},
		"too large":     {Type: "x", OwnerID: 1, Data: map[string]string{"blob": strings.Repeat("a", realtime.MaxPayload)}},
	} {
		require.Error(t, realtime.Publish(ctx, pool, ev), name)
	}
}
