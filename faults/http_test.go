//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// apiClient talks to one Beacon API (or a proxy in front of replicas).
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(base string) *apiClient {
	return &apiClient{base: base, hc: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, MaxConnsPerHost: 64},
	}}
}

func (c *apiClient) close() { c.hc.CloseIdleConnections() }

// withToken returns a client on the same connections with another token.
func (c *apiClient) withToken(token string) *apiClient {
	return &apiClient{base: c.base, token: token, hc: c.hc}
}

// response is an answer read whole (up to 4 MB).
type response struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func (r *response) contentType() string { return r.header.Get("Content-Type") }

// isProblem reports whether the answer is an RFC 9457 problem document.
func (r *response) isProblem() bool {
	return strings.HasPrefix(r.contentType(), "application/problem+json")
}

// String describes the answer in one line for failure messages.
func (r *response) String() string {
	b := r.body
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	return fmt.Sprintf("%d (%s) %s", r.status, r.contentType(), strings.TrimSpace(string(b)))
}

// send sends a request; body is sent as is with contentType when not nil.
func (c *apiClient) send(ctx context.Context, method, path string, body []byte, contentType string, header http.Header) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start)}, nil
}

// call sends in as JSON (nil: no body) and returns the answer.
func (c *apiClient) call(ctx context.Context, method, path string, in any, header http.Header) (*response, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
	}
	return c.send(ctx, method, path, body, "application/json", header)
}

// must sends in as JSON, requires status want and decodes the answer into
// out (when not nil).
func (c *apiClient) must(t *testing.T, method, path string, in any, want int, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.call(ctx, method, path, in, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status != want {
		t.Fatalf("%s %s: want %d, got %s", method, path, want, r)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, r, err)
		}
	}
}

// signIn gets a token with the password grant, once: failed sign-ins are
// rate limited, so it is never retried.
func (c *apiClient) signIn(t *testing.T, email, password string) *apiClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.passwordGrant(ctx, email, password, "")
	if err != nil {
		t.Fatalf("sign in as %s (not retried): %v", email, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("sign in as %s (not retried): %s", email, r)
	}
	return c.withToken(tok.AccessToken)
}

// passwordGrant posts one password grant; forwardedFor, when set, is sent
// as X-Forwarded-For.
func (c *apiClient) passwordGrant(ctx context.Context, email, password, forwardedFor string) (*response, error) {
	form := url.Values{"grant_type": {"password"}, "username": {email}, "password": {password}}
	h := http.Header{}
	if forwardedFor != "" {
		h.Set("X-Forwarded-For", forwardedFor)
	}
	return c.withToken("").send(ctx, http.MethodPost, "/v1/oauth/token", []byte(form.Encode()), "application/x-www-form-urlencoded", h)
}

// monitorBody is a monitor that is never checked on schedule.
func monitorBody(name, targetURL string) map[string]any {
	return map[string]any{"name": name, "url": targetURL, "interval_seconds": 86400, "timeout_ms": 5000, "enabled": false}
}
