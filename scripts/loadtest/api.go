package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/beaconhq/beacon/internal/config"
)

// apiClient talks to one Beacon API for setup (sign-in, monitors); the load
// itself goes through the load generator.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}}
}

func (c *apiClient) close() { c.http.CloseIdleConnections() }

// signIn gets an access token with the password grant for the development
// admin (or BEACON_ADMIN_*), exactly once: failed sign-ins lock the account,
// so it is never retried.
func (c *apiClient) signIn(ctx context.Context, cfg config.Config) error {
	form := url.Values{"grant_type": {"password"}, "username": {cfg.AdminEmail}, "password": {cfg.AdminPassword}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.do(req, http.StatusOK, &out); err != nil {
		return fmt.Errorf("sign in as %s (not retried): %w", cfg.AdminEmail, err)
	}
	if out.AccessToken == "" {
		return fmt.Errorf("sign in as %s: no access_token in the answer", cfg.AdminEmail)
	}
	c.token = out.AccessToken
	return nil
}

// createMonitors creates n monitors checking target, 4 at a time. They are
// disabled, so the scheduler never enqueues them (a new monitor is due at
// once otherwise): only the load test's manual checks run, and those run
// whether a monitor is enabled or not.
func (c *apiClient) createMonitors(ctx context.Context, target string, n int) ([]int64, error) {
	ids := make([]int64, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range next {
				ids[i], errs[i] = c.createMonitor(ctx, target, i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (c *apiClient) createMonitor(ctx context.Context, target string, i int) (int64, error) {
	body, _ := json.Marshal(map[string]any{
		"name": fmt.Sprintf("loadtest %d", i+1), "url": target, "interval_seconds": 86400,
		"timeout_ms": 5000, "enabled": false,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/monitors", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	var out struct {
		ID int64 `json:"id"`
	}
	if err := c.do(req, http.StatusCreated, &out); err != nil {
		return 0, fmt.Errorf("create monitor: %w", err)
	}
	return out.ID, nil
}

// do sends req and decodes a want-status JSON answer into out.
func (c *apiClient) do(req *http.Request, want int, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}
