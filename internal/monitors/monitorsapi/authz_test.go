package monitorsapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/auth"
)

// publicOperations are the only operations anyone may call without a
// token. Adding one here is a decision; forgetting to protect a new
// operation fails TestEveryOperationIsProtected.
var publicOperations = map[string]bool{
	"issue-token":     true,
	"revoke-token":    true,
	"get-status-page": true,
}

type operation struct {
	id, method, path string
	secured, admin   bool
}

// operations reads the served OpenAPI document: the walk covers exactly
// what the API exposes.
func operations(t *testing.T, b *testBundle) []operation {
	t.Helper()
	doc := b.As("").Do(t, http.MethodGet, "/openapi.json", nil).JSON(t)
	var ops []operation
	for path, item := range doc["paths"].(map[string]any) {
		for method, raw := range item.(map[string]any) {
			op := raw.(map[string]any)
			o := operation{id: op["operationId"].(string), method: strings.ToUpper(method), path: path}
			sec, _ := op["security"].([]any)
			o.secured = len(sec) > 0
			for _, tag := range op["tags"].([]any) {
				o.admin = o.admin || tag == "Admin"
			}
			ops = append(ops, o)
		}
	}
	require.NotEmpty(t, ops)
	return ops
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

func (o operation) url(id int64) string {
	return pathParam.ReplaceAllStringFunc(o.path, func(p string) string {
		if p == "{slug}" {
			return "no-such-page"
		}
		return strconv.FormatInt(id, 10)
	})
}

func body(method string) any {
	if method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut {
		return map[string]any{}
	}
	return nil
}

func TestEveryOperationIsProtected(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	anonymous := b.As("")
	expired := b.As("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")
	for _, o := range operations(t, b) {
		if publicOperations[o.id] {
			require.False(t, o.secured, "%s is public but declares security", o.id)
			r := anonymous.Do(t, o.method, o.url(1), body(o.method))
			require.NotEqual(t, http.StatusUnauthorized, r.Status, "public %s asked for a token", o.id)
			continue
		}
		require.True(t, o.secured, "%s declares no security scheme: protect it (private/admin in routes.go) or list it in publicOperations", o.id)
		for _, c := range []*testBundle{anonymous, expired} {
			r := c.Do(t, o.method, o.url(1), body(o.method))
			p := requireProblem(t, r, http.StatusUnauthorized)
			require.NotEmpty(t, p["detail"], o.id)
			require.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer", o.id)
		}
	}
}

func TestAdminOperationsRefuseMembers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{}) // b.Token is a member's
	admin := b.As(b.SignIn(t, "root@example.org", auth.RoleAdmin))
	var n int
	ops := operations(t, b)
	for _, o := range ops {
		if !o.admin {
			continue
		}
		n++
		requireProblem(t, b.Do(t, o.method, o.url(1), body(o.method)), http.StatusForbidden)
	}
	// River UI, outside huma, has the same guard.
	requireProblem(t, b.As("").Do(t, http.MethodGet, "/riverui/", nil), http.StatusUnauthorized)
	requireProblem(t, b.Do(t, http.MethodGet, "/riverui/", nil), http.StatusForbidden)
	// Then as the admin, whose calls may delete or disable the member.
	for _, o := range ops {
		if o.admin {
			require.NotEqual(t, http.StatusForbidden, admin.Do(t, o.method, o.url(1), body(o.method)).Status, o.id)
		}
	}
	require.GreaterOrEqual(t, n, 5, "the admin operations are tagged Admin")
	require.Equal(t, http.StatusOK, admin.Do(t, http.MethodGet, "/riverui/", nil).Status)
}

// Another user's resources answer 404, exactly like missing ones: their
// existence is not revealed.
func TestOtherUsersResourcesAreNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	alice := b
	bob := b.As(b.SignIn(t, "bob@example.org", auth.RoleMember))

	m := mustCreate(t, alice, map[string]any{"name": "alice's", "url": "https://example.com/"})
	id := int64(m["id"].(float64))
	run := alice.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks", id), nil)
	require.Equal(t, http.StatusAccepted, run.Status)
	jobID := int64(run.JSON(t)["job_id"].(float64))
	client := alice.Do(t, http.MethodPost, "/v1/clients", map[string]any{"name": "ci"})
	require.Equal(t, http.StatusCreated, client.Status, "%s", client.Body)
	clientID := int64(client.JSON(t)["id"].(float64))

	for _, o := range operations(t, b) {
		var target int64
		switch {
		case strings.HasPrefix(o.path, "/v1/monitors/{id}"):
			target = id
		case o.path == "/v1/jobs/{id}":
			target = jobID
		case o.path == "/v1/clients/{id}":
			target = clientID
		default:
			continue
		}
		var in any
		if o.method == http.MethodPatch {
			in = map[string]any{"name": "taken over"}
		}
		requireProblem(t, bob.Do(t, o.method, o.url(target), in), http.StatusNotFound)
		if o.method == http.MethodGet {
			require.Equal(t, http.StatusOK, alice.Do(t, o.method, o.url(target), nil).Status, "%s works for its owner", o.id)
		}
	}
	// Nothing of Alice's changed, and Bob's list is empty.
	got := alice.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil)
	require.Equal(t, http.StatusOK, got.Status)
	require.Equal(t, "alice's", got.JSON(t)["name"])
	require.Equal(t, []any{}, bob.Do(t, http.MethodGet, "/v1/monitors", nil).JSON(t)["items"])
	clients := alice.Do(t, http.MethodGet, "/v1/clients", nil)
	require.Contains(t, string(clients.Body), `"client_id"`)
	require.NotContains(t, string(clients.Body), `"revoked_at"`)
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	post := func(form url.Values, basic ...string) response {
		req, err := http.NewRequest(http.MethodPost, b.Server.URL+"/v1/oauth/token", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if len(basic) == 2 {
			req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
		}
		resp, err := b.Server.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var r response
		r.Status, r.Header = resp.StatusCode, resp.Header
		r.Body = readAll(t, resp)
		return r
	}
	oauthError := func(r response, status int, code string) {
		t.Helper()
		p := requireProblem(t, r, status)
		require.Equal(t, code, p["error"], "RFC 6749 error code")
		require.NotEmpty(t, p["error_description"])
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	}

	// Password grant, then refresh with rotation.
	ok := post(url.Values{"grant_type": {"password"}, "username": {"member@example.org"}, "password": {testPassword}})
	require.Equal(t, http.StatusOK, ok.Status, "%s", ok.Body)
	require.Equal(t, "no-store", ok.Header.Get("Cache-Control"))
	tok := ok.JSON(t)
	require.Equal(t, "Bearer", tok["token_type"])
	refreshed := post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	require.Equal(t, http.StatusOK, refreshed.Status)
	oauthError(post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}), 400, "invalid_grant")

	// Client credentials, with HTTP Basic and in the form.
	c := b.Do(t, http.MethodPost, "/v1/clients", map[string]any{"name": "robot"}).JSON(t)
	id, secret := c["client_id"].(string), c["client_secret"].(string)
	require.Equal(t, http.StatusOK, post(url.Values{"grant_type": {"client_credentials"}}, id, secret).Status)
	machine := post(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	require.Equal(t, http.StatusOK, machine.Status)
	robot := b.As(machine.JSON(t)["access_token"].(string))
	require.Equal(t, http.StatusOK, robot.Do(t, http.MethodGet, "/v1/monitors", nil).Status)
	oauthError(post(url.Values{"grant_type": {"client_credentials"}}, id, "wrong"), 401, "invalid_client")
	// Revoking the client ends its token at once.
	require.Equal(t, http.StatusNoContent, b.Do(t, http.MethodDelete, fmt.Sprintf("/v1/clients/%d", int64(c["id"].(float64))), nil).Status)
	requireProblem(t, robot.Do(t, http.MethodGet, "/v1/monitors", nil), http.StatusUnauthorized)

	// Bad requests.
	oauthError(post(url.Values{}), 400, "invalid_request")
	oauthError(post(url.Values{"grant_type": {"authorization_code"}}), 400, "unsupported_grant_type")
	oauthError(post(url.Values{"grant_type": {"password"}, "username": {"member@example.org"}}), 400, "invalid_request")

	// Tampered tokens.
	parts := strings.Split(tok["access_token"].(string), ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"member"`, `"admin"`, 1)))
	requireProblem(t, b.As(parts[0]+"."+forged+"."+parts[2]).Do(t, http.MethodGet, "/v1/admin/users", nil), http.StatusUnauthorized)

	// Failed sign-ins are rate limited, with Retry-After, for known and
	// unknown accounts alike.
	for _, user := range []string{"member@example.org", "nobody@example.org"} {
		var last response
		for range 6 {
			last = post(url.Values{"grant_type": {"password"}, "username": {user}, "password": {"wrong password 00"}})
		}
		oauthError(last, http.StatusTooManyRequests, "slow_down")
		require.NotEmpty(t, last.Header.Get("Retry-After"))
	}
	// Sign-out revokes the refresh token.
	fresh := refreshed.JSON(t)["refresh_token"].(string)
	rv, err := b.Server.Client().PostForm(b.Server.URL+"/v1/oauth/revoke", url.Values{"token": {fresh}})
	require.NoError(t, err)
	rv.Body.Close()
	require.Equal(t, http.StatusOK, rv.StatusCode)
	oauthError(post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh}}), 400, "invalid_grant")
}

// An admin disables, re-enables and demotes a user through the API; the
// user's token follows at once.
func TestAdminChangesUsers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{}) // b.Token is a member's
	admin := b.As(b.SignIn(t, "root@example.org", auth.RoleAdmin))
	other := b.As(b.SignIn(t, "other-admin@example.org", auth.RoleAdmin))
	id := func(c *testBundle) string {
		r := c.Do(t, http.MethodGet, "/v1/me", nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		return fmt.Sprint(int64(r.JSON(t)["id"].(float64)))
	}
	memberID, otherID, adminID := id(b), id(other), id(admin)

	r := admin.Do(t, http.MethodPatch, "/v1/admin/users/"+memberID, map[string]any{"disabled": true})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, true, r.JSON(t)["disabled"])
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/me", nil), http.StatusUnauthorized)
	r = admin.Do(t, http.MethodPatch, "/v1/admin/users/"+memberID, map[string]any{"disabled": false})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, http.StatusOK, b.Do(t, http.MethodGet, "/v1/me", nil).Status)

	r = admin.Do(t, http.MethodPatch, "/v1/admin/users/"+otherID, map[string]any{"role": "member"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	requireProblem(t, other.Do(t, http.MethodGet, "/v1/admin/users", nil), http.StatusForbidden)

	requireProblem(t, admin.Do(t, http.MethodPatch, "/v1/admin/users/"+adminID, map[string]any{"role": "member"}), http.StatusConflict)
	requireProblem(t, admin.Do(t, http.MethodPatch, "/v1/admin/users/"+memberID, map[string]any{"role": "owner"}), http.StatusUnprocessableEntity)
	requireProblem(t, admin.Do(t, http.MethodPatch, "/v1/admin/users/424242", map[string]any{"disabled": true}), http.StatusNotFound)
}
