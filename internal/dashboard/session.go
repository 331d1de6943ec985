package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/beaconhq/beacon/internal/httpx"
	"github.com/beaconhq/beacon/internal/problem"
)

// Session cookie names (part of the dashboard's contract).
const (
	accessCookie  = "beacon_at"
	refreshCookie = "beacon_rt"
)

const (
	// refreshCookieMaxAge matches the API's default refresh-token lifetime;
	// the API does not announce it. A cookie that outlives its token only
	// costs one failed refresh, after which the UI asks to sign in.
	refreshCookieMaxAge = 30 * 24 * time.Hour
	// maxLoginBody caps what /auth/login reads.
	maxLoginBody = 1 << 20
	// maxTokenResponse caps what is read from the token endpoint.
	maxTokenResponse = 64 << 10
	// refreshGrace is how long the outcome of a refresh is reused for the
	// same (now spent) refresh token. The API treats a second use of a
	// refresh token as theft and revokes the whole sign-in, and a page
	// fires several requests at once when its access token expires; they
	// must share one refresh. It also rescues the response that carried
	// the new cookies but never reached the browser.
	refreshGrace = 30 * time.Second
)

// cookieJar writes the session cookies.
type cookieJar struct {
	secure bool
}

func (j cookieJar) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   j.secure,
		SameSite: http.SameSiteStrictMode,
	}
	switch {
	case maxAge < 0:
		c.MaxAge = -1 // "Max-Age=0": delete now
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	}
	return c
}

// set returns the cookies that store a token pair.
func (j cookieJar) set(t tokens) []*http.Cookie {
	cs := []*http.Cookie{j.cookie(accessCookie, t.Access, time.Duration(t.ExpiresIn)*time.Second)}
	if t.Refresh != "" {
		cs = append(cs, j.cookie(refreshCookie, t.Refresh, refreshCookieMaxAge))
	}
	return cs
}

// clear returns the cookies that end the session.
func (j cookieJar) clear() []*http.Cookie {
	return []*http.Cookie{j.cookie(accessCookie, "", -1), j.cookie(refreshCookie, "", -1)}
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// tokens is what the token endpoint issues.
type tokens struct {
	Access    string `json:"access_token"`
	Refresh   string `json:"refresh_token"`
	ExpiresIn int    `json:"expires_in"`
}

// grantError is a token endpoint's refusal.
type grantError struct {
	Status     int
	RetryAfter string
}

func (e *grantError) Error() string { return fmt.Sprintf("token endpoint answered %d", e.Status) }

// rejected reports whether the API refused the credentials or the refresh
// token themselves (as opposed to being unavailable).
func (e *grantError) rejected() bool {
	return e.Status == http.StatusBadRequest || e.Status == http.StatusUnauthorized
}

// tokenClient calls the API's OAuth endpoints. Form bodies carry the
// secrets, so nothing secret is ever part of a URL or an error message.
type tokenClient struct {
	http      *http.Client
	tokenURL  string
	revokeURL string

	mu       sync.Mutex
	inflight map[[sha256.Size]byte]*refreshCall
}

type refreshCall struct {
	done     chan struct{}
	tok      tokens
	err      error
	finished time.Time
}

func newTokenClient(api *url.URL, rt http.RoundTripper) *tokenClient {
	return &tokenClient{
		http: &http.Client{
			Transport: rt,
			Timeout:   tokenTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		tokenURL:  api.JoinPath("/v1/oauth/token").String(),
		revokeURL: api.JoinPath("/v1/oauth/revoke").String(),
		inflight:  map[[sha256.Size]byte]*refreshCall{},
	}
}

// password exchanges a user's credentials for tokens. client is the
// browser's address, passed on so the API could rate-limit per browser.
func (c *tokenClient) password(ctx context.Context, email, password, client string) (tokens, error) {
	return c.grant(ctx, url.Values{"grant_type": {"password"}, "username": {email}, "password": {password}}, client)
}

// refresh rotates a refresh token. Concurrent and recent calls with the
// same token share one grant (see refreshGrace). The grant runs to its end
// even if the request that started it goes away: the API has rotated the
// token by then, and the new pair must not be lost.
func (c *tokenClient) refresh(ctx context.Context, refreshToken string) (tokens, error) {
	key := sha256.Sum256([]byte(refreshToken))
	now := time.Now()
	c.mu.Lock()
	for k, call := range c.inflight {
		if !call.finished.IsZero() && now.Sub(call.finished) > refreshGrace {
			delete(c.inflight, k)
		}
	}
	call, ok := c.inflight[key]
	if !ok {
		call = &refreshCall{done: make(chan struct{})}
		c.inflight[key] = call
		go c.runRefresh(context.WithoutCancel(ctx), key, call, refreshToken)
	}
	c.mu.Unlock()

	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return tokens{}, ctx.Err()
	}
}

// runRefresh is owned by the refreshCall it completes: it ends within
// tokenTimeout.
func (c *tokenClient) runRefresh(ctx context.Context, key [sha256.Size]byte, call *refreshCall, refreshToken string) {
	tok, err := c.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, "")
	c.mu.Lock()
	call.tok, call.err, call.finished = tok, err, time.Now()
	var ge *grantError
	if err != nil && !(errors.As(err, &ge) && ge.rejected()) {
		// A transient failure is not remembered: the next request retries.
		delete(c.inflight, key)
	}
	c.mu.Unlock()
	close(call.done)
}

func (c *tokenClient) grant(ctx context.Context, form url.Values, client string) (tokens, error) {
	res, err := c.post(ctx, c.tokenURL, form, client)
	if err != nil {
		return tokens{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxTokenResponse))
		return tokens{}, &grantError{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After")}
	}
	var t tokens
	if err := json.NewDecoder(io.LimitReader(res.Body, maxTokenResponse)).Decode(&t); err != nil {
		return tokens{}, fmt.Errorf("decode token response: %w", err)
	}
	if t.Access == "" {
		return tokens{}, errors.New("token response without an access token")
	}
	return t, nil
}

// revoke ends the sign-in a refresh token belongs to.
func (c *tokenClient) revoke(ctx context.Context, refreshToken string) error {
	res, err := c.post(ctx, c.revokeURL, url.Values{"token": {refreshToken}}, "")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxTokenResponse))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("revocation endpoint answered %d", res.StatusCode)
	}
	return nil
}

func (c *tokenClient) post(ctx context.Context, target string, form url.Values, client string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	return c.http.Do(req)
}

// ---- Handlers.

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// handleLogin signs in with the API and keeps the tokens in cookies; the
// response body never contains them.
func (s *server) handleLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !sameOrigin(r) {
		problem.Write(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		// Also a CSRF defence: a cross-site form cannot send JSON.
		problem.Write(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	var in loginRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		problem.Write(w, http.StatusBadRequest, "the body must be a JSON object with email and password")
		return
	}
	if strings.TrimSpace(in.Email) == "" || in.Password == "" {
		problem.Write(w, http.StatusUnauthorized, "invalid email or password")
		return
	}

	tok, err := s.tokens.password(r.Context(), in.Email, in.Password,
		httpx.ClientIP(r.RemoteAddr, strings.Join(r.Header.Values("X-Forwarded-For"), ","), s.trusted))
	var ge *grantError
	switch {
	case err == nil:
	case errors.As(err, &ge) && ge.rejected():
		problem.Write(w, http.StatusUnauthorized, "invalid email or password")
		return
	case errors.As(err, &ge) && ge.Status == http.StatusTooManyRequests:
		if ge.RetryAfter != "" {
			w.Header().Set("Retry-After", ge.RetryAfter)
		}
		problem.Write(w, http.StatusTooManyRequests, "too many failed sign-ins; try again later")
		return
	case errors.As(err, &ge) && ge.Status == http.StatusServiceUnavailable:
		if ge.RetryAfter != "" {
			w.Header().Set("Retry-After", ge.RetryAfter)
		}
		problem.Write(w, http.StatusServiceUnavailable, "the API is not ready; try again shortly")
		return
	default:
		s.log.WarnContext(r.Context(), "sign-in failed at the API", "error", err)
		problem.Write(w, http.StatusBadGateway, "the API is unavailable")
		return
	}
	for _, c := range s.cookies.set(tok) {
		http.SetCookie(w, c)
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleLogout revokes the sign-in at the API and clears the cookies. The
// cookies are cleared even if the API cannot be reached: the browser
// forgets the tokens either way.
func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !sameOrigin(r) {
		problem.Write(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if rt := cookieValue(r, refreshCookie); rt != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), tokenTimeout)
		defer cancel()
		if err := s.tokens.revoke(ctx, rt); err != nil {
			s.log.WarnContext(r.Context(), "revoking a refresh token failed", "error", err)
		}
	}
	for _, c := range s.cookies.clear() {
		http.SetCookie(w, c)
	}
	w.WriteHeader(http.StatusNoContent)
}

// sameOrigin reports whether a browser request comes from a page of this
// origin. Browsers send Origin with every POST and every websocket
// handshake; requests without one are not from a browser page.
//
// Behind a reverse proxy that rewrites Host, the public host arrives in
// X-Forwarded-Host. Trusting it is safe here: a page on another site cannot
// add that header to a request without a CORS preflight, and a websocket
// handshake or a form cannot carry it at all.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, v := range r.Header.Values("X-Forwarded-Host") {
		for h := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(h), u.Host) {
				return true
			}
		}
	}
	return false
}
