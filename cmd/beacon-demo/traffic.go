package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// trafficConfig drives the generator.
type trafficConfig struct {
	API        string        // Beacon's API, e.g. http://localhost:8080
	Targets    string        // the demo targets as Beacon's workers reach them
	Email      string        // the account signed in with (the first admin)
	Password   string        //
	Rate       float64       // API calls per second
	Duration   time.Duration // 0: until stopped
	Interval   int           // the demo monitors' interval_seconds
	BadSignIns time.Duration // one failing sign-in this often (0: none)
	StatusAddr string        // serves /healthz and /stats; empty: none
}

// monitorPrefix names the monitors the generator owns.
const monitorPrefix = "demo: "

// stats counts the generator's calls; only unexpected answers are errors.
type stats struct {
	mu         sync.Mutex
	Calls      map[string]int64 `json:"calls"`
	Unexpected int64            `json:"unexpected"`
	LastError  string           `json:"last_error,omitempty"`
}

func (s *stats) count(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls[action]++
}

func (s *stats) fail(log *slog.Logger, action string, err error) {
	s.mu.Lock()
	s.Unexpected++
	s.LastError = action + ": " + err.Error()
	s.mu.Unlock()
	log.Error("unexpected answer", "action", action, "error", err.Error())
}

func (s *stats) snapshot() ([]byte, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s)
	return b, s.Unexpected
}

// apiClient is a small Beacon API client with an OAuth2 token that it
// refreshes before expiry.
type apiClient struct {
	base string
	http *http.Client
	cfg  trafficConfig

	mu      sync.Mutex
	access  string
	refresh string
	expires time.Time
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// statusError is an answer with a status the caller did not expect.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d: %s", e.method, e.path, e.status, e.body)
}

// do sends a request and decodes a JSON answer into out when its status is
// one of want.
func (c *apiClient) do(ctx context.Context, method, path string, body any, out any, want ...int) (int, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, err
		}
		rd, ctype = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if !strings.HasPrefix(path, "/v1/oauth/") {
		tok, err := c.token(ctx)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if !slices.Contains(want, resp.StatusCode) {
		return resp.StatusCode, &statusError{method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(raw))}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
		}
	}
	return resp.StatusCode, nil
}

// signIn uses the password grant. Failed sign-ins slow the account down,
// so the caller never retries it in a loop.
func (c *apiClient) signIn(ctx context.Context) error {
	var tok tokenAnswer
	form := url.Values{"grant_type": {"password"}, "username": {c.cfg.Email}, "password": {c.cfg.Password}}
	if _, err := c.do(ctx, http.MethodPost, "/v1/oauth/token", form, &tok, http.StatusOK); err != nil {
		return fmt.Errorf("sign in as %s: %w", c.cfg.Email, err)
	}
	c.store(tok)
	return nil
}

func (c *apiClient) store(tok tokenAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.access, c.expires = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
	if tok.RefreshToken != "" {
		c.refresh = tok.RefreshToken
	}
}

// token returns a valid access token, refreshed (refresh_token grant) when
// it expires within a minute.
func (c *apiClient) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	access, refresh, expires := c.access, c.refresh, c.expires
	c.mu.Unlock()
	if access != "" && time.Until(expires) > time.Minute {
		return access, nil
	}
	if refresh == "" {
		return "", errors.New("not signed in")
	}
	var tok tokenAnswer
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	if _, err := c.do(ctx, http.MethodPost, "/v1/oauth/token", form, &tok, http.StatusOK); err != nil {
		return "", fmt.Errorf("refresh the access token: %w", err)
	}
	c.store(tok)
	return tok.AccessToken, nil
}

type monitor struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	URL   string `json:"url"`
	State string `json:"state"`
}

// listMonitors returns every monitor of the account, page by page.
func (c *apiClient) listMonitors(ctx context.Context) ([]monitor, error) {
	var all []monitor
	cursor := ""
	for range 1000 {
		var page struct {
			Items      []monitor `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		path := "/v1/monitors?limit=200"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if _, err := c.do(ctx, http.MethodGet, path, nil, &page, http.StatusOK); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
	return nil, errors.New("list monitors: too many pages")
}

// ensureMonitors makes one enabled monitor per demo target, named
// "demo: <target>", creating or repointing it; running it again changes
// nothing. It returns their ids.
func (c *apiClient) ensureMonitors(ctx context.Context) ([]int64, error) {
	existing, err := c.listMonitors(ctx)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(c.cfg.Targets, "/")
	var ids []int64
	for _, name := range targetNames {
		want := base + "/" + name
		i := slices.IndexFunc(existing, func(m monitor) bool { return m.Name == monitorPrefix+name })
		if i >= 0 {
			m := existing[i]
			if m.URL != want {
				patch := map[string]any{"url": want}
				if _, err := c.do(ctx, http.MethodPatch, "/v1/monitors/"+strconv.FormatInt(m.ID, 10), patch, nil, http.StatusOK); err != nil {
					return nil, err
				}
			}
			ids = append(ids, m.ID)
			continue
		}
		var m monitor
		body := map[string]any{"name": monitorPrefix + name, "url": want, "interval_seconds": c.cfg.Interval, "timeout_ms": 3000, "enabled": true}
		if _, err := c.do(ctx, http.MethodPost, "/v1/monitors", body, &m, http.StatusCreated); err != nil {
			return nil, err
		}
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// waitReady polls the API's /readyz until it answers 200.
func waitReady(ctx context.Context, c *apiClient, log *slog.Logger) error {
	last := ""
	for i := 0; ; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
		resp, err := c.http.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if i%10 == 9 {
			log.Info("waiting for the API", "api", c.base, "last", last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("API %s not ready (last: %s): %w", c.base, last, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// action is one kind of call the generator makes, with its weight.
type action struct {
	name   string
	weight int
	run    func(ctx context.Context, c *apiClient, ids []int64) error
}

func pick(ids []int64) string { return strconv.FormatInt(ids[rand.IntN(len(ids))], 10) }

var actions = []action{
	{"list monitors", 30, func(ctx context.Context, c *apiClient, _ []int64) error {
		_, err := c.do(ctx, http.MethodGet, "/v1/monitors?limit=50", nil, nil, http.StatusOK)
		return err
	}},
	{"get monitor", 20, func(ctx context.Context, c *apiClient, ids []int64) error {
		_, err := c.do(ctx, http.MethodGet, "/v1/monitors/"+pick(ids), nil, nil, http.StatusOK)
		return err
	}},
	// A check run from the API and waited for: its trace goes from this
	// request through River into the worker's HTTP call to the target.
	{"run check", 20, func(ctx context.Context, c *apiClient, ids []int64) error {
		_, err := c.do(ctx, http.MethodPost, "/v1/monitors/"+pick(ids)+"/checks?wait=10", nil, nil, http.StatusOK, http.StatusAccepted)
		return err
	}},
	{"list results", 12, func(ctx context.Context, c *apiClient, ids []int64) error {
		_, err := c.do(ctx, http.MethodGet, "/v1/monitors/"+pick(ids)+"/results?limit=20", nil, nil, http.StatusOK)
		return err
	}},
	{"get stats", 8, func(ctx context.Context, c *apiClient, ids []int64) error {
		_, err := c.do(ctx, http.MethodGet, "/v1/monitors/"+pick(ids)+"/stats", nil, nil, http.StatusOK)
		return err
	}},
	// A short workflow: create a disabled monitor, read it, delete it.
	{"create and delete a monitor", 5, func(ctx context.Context, c *apiClient, _ []int64) error {
		var m monitor
		body := map[string]any{"name": "demo scratch " + strconv.Itoa(rand.IntN(1e6)), "url": strings.TrimRight(c.cfg.Targets, "/") + "/shop", "enabled": false}
		if _, err := c.do(ctx, http.MethodPost, "/v1/monitors", body, &m, http.StatusCreated); err != nil {
			return err
		}
		id := strconv.FormatInt(m.ID, 10)
		if _, err := c.do(ctx, http.MethodGet, "/v1/monitors/"+id, nil, nil, http.StatusOK); err != nil {
			return err
		}
		_, err := c.do(ctx, http.MethodDelete, "/v1/monitors/"+id, nil, nil, http.StatusNoContent)
		return err
	}},
	// A real sign-in now and then: bcrypt, the token endpoint's RED.
	{"sign in", 2, func(ctx context.Context, c *apiClient, _ []int64) error {
		return c.signIn(ctx)
	}},
	// Bad input answered with a problem: a 422 that is not an error of ours.
	{"invalid monitor", 3, func(ctx context.Context, c *apiClient, _ []int64) error {
		_, err := c.do(ctx, http.MethodPost, "/v1/monitors", map[string]any{"name": "", "url": "not a url"}, nil, http.StatusUnprocessableEntity)
		return err
	}},
}

// badSignIn tries a wrong password for an account that does not exist: a
// 400/401 invalid_grant, or 429 once the address is slowed down.
func badSignIn(ctx context.Context, c *apiClient) error {
	form := url.Values{"grant_type": {"password"}, "username": {"intruder@demo.invalid"}, "password": {"not-the-password"}}
	_, err := c.do(ctx, http.MethodPost, "/v1/oauth/token", form, nil, http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests)
	return err
}

// runTraffic signs in, makes sure the demo monitors exist, then calls the
// API at cfg.Rate until ctx ends or cfg.Duration passes. It returns the
// number of unexpected answers.
func runTraffic(ctx context.Context, cfg trafficConfig, log *slog.Logger) (*stats, error) {
	if cfg.Rate <= 0 || cfg.Rate > 1000 {
		return nil, errors.New("traffic: -rate must be in (0, 1000]")
	}
	for _, u := range []string{cfg.API, cfg.Targets} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("traffic: %q is not an http(s) URL", u)
		}
	}
	if cfg.Interval < 10 || cfg.Interval > 86400 {
		return nil, errors.New("traffic: -interval must be in [10, 86400] seconds")
	}
	c := &apiClient{
		base: strings.TrimRight(cfg.API, "/"), cfg: cfg,
		http: &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}},
	}
	defer c.http.CloseIdleConnections()
	st := &stats{Calls: map[string]int64{}}
	var ready atomic.Bool
	if cfg.StatusAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})
		mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
			b, _ := st.snapshot()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		})
		srv := &http.Server{Addr: cfg.StatusAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status server", "error", err.Error())
			}
		}()
		defer srv.Close()
	}

	readyCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := waitReady(readyCtx, c, log)
	cancel()
	if err != nil {
		return nil, err
	}
	if err := c.signIn(ctx); err != nil {
		return nil, err
	}
	ids, err := c.ensureMonitors(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo monitors: %w", err)
	}
	ready.Store(true)
	log.Info("traffic: monitors ready, calling the API", "monitors", ids, "rate_per_s", cfg.Rate, "targets", cfg.Targets)

	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	nextBad := time.Now().Add(5 * time.Second)
	// At most 8 calls in flight: a slow target (a check waited for) must
	// not pile requests up.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		select {
		case sem <- struct{}{}:
		default:
			st.count("skipped (8 in flight)")
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			// Calls in flight finish even when the run ends.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
			defer cancel()
			if err := f(cctx); err != nil {
				st.fail(log, name, err)
				return
			}
			st.count(name)
		})
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		if cfg.BadSignIns > 0 && time.Now().After(nextBad) {
			nextBad = time.Now().Add(cfg.BadSignIns)
			run("failed sign-in", func(ctx context.Context) error { return badSignIn(ctx, c) })
			continue
		}
		n := rand.IntN(total)
		for _, a := range actions {
			if n < a.weight {
				run(a.name, func(ctx context.Context) error { return a.run(ctx, c, ids) })
				break
			}
			n -= a.weight
		}
	}
	wg.Wait()
	return st, nil
}
