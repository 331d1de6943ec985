// Package platformtest builds Beacon for a domain's API tests exactly as a
// process does (platform.Assemble) on a fresh database, served over real
// HTTP, with helpers to sign in and send requests. A domain's tests use it
// instead of wiring the job queue and the API themselves.
package platformtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/pgtest"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/telemetry"
)

// Options say what to build.
type Options struct {
	Modules []platform.Module
	// Work starts a working River client (otherwise jobs stay queued).
	Work bool
	// Telemetry, when set, instruments everything as production does: the
	// server, the pool's queries and River; its Logger is the log.
	Telemetry *telemetry.Telemetry
	// Env overrides configuration (BEACON_* variables); by default checks
	// may reach loopback and the scheduler ticks every minute.
	Env map[string]string
}

// Bundle is Beacon built for a test.
type Bundle struct {
	Pool    *pgxpool.Pool
	Stack   *platform.Stack
	Client  *river.Client[pgx.Tx] // the API's insert-only client
	Server  *httptest.Server
	Handler http.Handler // what Server serves
	Deps    httpapi.Deps // what built Handler (tests rebuild it with changes)
	Auth    *auth.Service
	// Token is sent by Do unless cleared: a member's, the bundle's user.
	Token string
}

// RiverUIStub stands for River UI behind the API's admin guard.
var RiverUIStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("river ui")) })

// New builds Beacon with o's modules on a fresh migrated database and signs
// in a member (Token).
func New(tb testing.TB, o Options) *Bundle {
	tb.Helper()
	var pool *pgxpool.Pool
	if tel := o.Telemetry; tel != nil {
		var err error
		pool, err = database.Open(context.Background(), pgtest.NewURL(tb), database.Traced(tel.TracerProvider, tel.MeterProvider))
		require.NoError(tb, err)
		tb.Cleanup(pool.Close)
	} else {
		pool = pgtest.New(tb)
	}
	env := map[string]string{
		"DATABASE_URL": "postgres://unused", "BEACON_CHECK_ALLOW_CIDRS": "127.0.0.0/8",
		"BEACON_SCHEDULER_INTERVAL": "1m", "BEACON_WORKER_CONCURRENCY": "5",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(tb, err)
	probe := database.NewProbe(pool)
	require.NoError(tb, probe.Ready(context.Background()))
	svc, err := auth.NewService(pool, auth.Config{Secret: []byte("test-only-key-test-only-key-test-only"), BcryptCost: 4})
	require.NoError(tb, err)
	stack, err := platform.Assemble(context.Background(), platform.Options{
		Config: cfg, Telemetry: o.Telemetry, Version: "test", Modules: o.Modules,
		Pool: pool, Serve: true, Work: o.Work, Ready: probe.Ready, Gate: probe.SchemaError, Auth: svc,
	})
	require.NoError(tb, err)
	tb.Cleanup(stack.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = stack.Waiter.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	if o.Work {
		require.NoError(tb, stack.Worker.Start(context.Background()))
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = jobs.Stop(ctx, stack.Worker, time.Second)
		})
	}
	deps := stack.Deps
	deps.RiverUI = RiverUIStub
	h, _ := httpapi.NewServer(deps)
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	b := &Bundle{Pool: pool, Stack: stack, Client: stack.Jobs, Server: srv, Handler: h, Deps: deps, Auth: svc}
	b.Token = b.SignIn(tb, "member@example.org", auth.RoleMember)
	return b
}

// Password is every test user's password.
const Password = "test password 1234"

// SignIn creates a user (if new) and signs in through the token endpoint,
// as a client would; it returns the access token.
func (b *Bundle) SignIn(tb testing.TB, email string, role auth.Role) string {
	tb.Helper()
	if _, err := b.Auth.CreateUser(context.Background(), email, Password, role); apperr.CodeOf(err) != apperr.Conflict {
		require.NoError(tb, err)
	}
	resp, err := b.Server.Client().PostForm(b.Server.URL+"/v1/oauth/token", url.Values{
		"grant_type": {"password"}, "username": {email}, "password": {Password}})
	require.NoError(tb, err)
	defer resp.Body.Close()
	var tok auth.Token
	require.Equal(tb, http.StatusOK, resp.StatusCode)
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&tok))
	return tok.AccessToken
}

// As returns a copy of the bundle that sends token (none when empty).
func (b *Bundle) As(token string) *Bundle {
	c := *b
	c.Token = token
	return &c
}

// Response is an answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object.
func (r Response) JSON(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

// Request builds the request Do sends; a string body is sent as is, any
// other is encoded as JSON.
func (b *Bundle) Request(tb testing.TB, method, path string, body any) *http.Request {
	tb.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(tb, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.Server.URL+path, rd)
	require.NoError(tb, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.Token != "" {
		req.Header.Set("Authorization", "Bearer "+b.Token)
	}
	return req
}

// Do sends a request with the bundle's token and reads the answer.
func (b *Bundle) Do(tb testing.TB, method, path string, body any) Response {
	tb.Helper()
	resp, err := b.Server.Client().Do(b.Request(tb, method, path, body))
	require.NoError(tb, err)
	return ReadResponse(tb, resp)
}

// ReadResponse reads and closes resp.
func ReadResponse(tb testing.TB, resp *http.Response) Response {
	tb.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// RequireProblem asserts an RFC 9457 problem with status, returning it.
func RequireProblem(tb testing.TB, r Response, status int) map[string]any {
	tb.Helper()
	require.Equal(tb, status, r.Status, "body: %s", r.Body)
	require.Equal(tb, "application/problem+json", r.Header.Get("Content-Type"))
	p := r.JSON(tb)
	require.EqualValues(tb, status, p["status"])
	require.NotEmpty(tb, p["title"])
	return p
}
