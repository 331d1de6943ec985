package httpapi

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/beaconhq/beacon/internal/httpapi/docsui"
)

// apiTags are the groups of operations in the docs, in this order. Every tag
// an operation uses must be declared here (make lint checks it).
func apiTags() []*huma.Tag {
	return []*huma.Tag{
		{Name: "Public: auth", Description: "Sign in and out: the OAuth2 token and revocation endpoints. No access token needed."},
		{Name: "Public: status pages", Description: "Status pages of the monitors their owners published. No access token needed."},
		{Name: "Account", Description: "The signed-in user and their API clients, the credentials of the client_credentials grant."},
		{Name: "Monitors", Description: "The HTTP endpoints you watch: what to request, how often, and which answers count as up."},
		{Name: "Checks", Description: "Checks on demand, check results, and uptime and latency statistics."},
		{Name: "Jobs", Description: "Background jobs, such as a check run on demand: state, attempts, errors and output."},
		{Name: "Admin", Description: "Every account and every API client. Admins only (403 for others)."},
	}
}

// addRoutes is the whole HTTP surface of Beacon. Every operation is
// declared public, private (its owner's data) or admin; anything not
// declared public requires a token.
func addRoutes(mux *http.ServeMux, api huma.API, d Deps) {
	// Operations: probes and documentation, outside /v1 and never gated.
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.Handle("GET /readyz", handleReadyz(d.Ready))
	docs := docsui.Handler("/docs", OpenAPIPath+".json")
	mux.Handle("/docs", docs)
	mux.Handle("/docs/", docs)
	mux.Handle("/", unrouted(mux)) // 404, or 405 with Allow; problem documents either way
	if d.Events != nil {
		mux.Handle("GET /v1/events", d.Events) // websocket; authenticates itself
	}
	if d.RiverUI != nil {
		mux.Handle("/riverui/", adminOnly(d, d.RiverUI))
	}

	v1 := huma.NewGroup(api, "/v1")
	v1.UseMiddleware(requireReady(api, d.Gate), withRemote(d.TrustedProxies), requireAuth(api, d.Auth))

	// Public: sign-in and published status pages.
	huma.Register(v1, public(huma.Operation{
		OperationID: "issue-token", Method: http.MethodPost, Path: "/oauth/token",
		Summary: "Get an access token (OAuth2)",
		Description: "RFC 6749 token endpoint: grant_type password, client_credentials (HTTP Basic or form) or refresh_token. " +
			"Failed sign-ins are rate limited (429 with Retry-After).",
		Tags: []string{"Public: auth"},
		Responses: map[string]*huma.Response{
			"400": problemResponse[oauthProblem](api, "invalid_request, invalid_grant or unsupported_grant_type"),
			"401": problemResponse[oauthProblem](api, "invalid_client"),
			"429": problemResponse[oauthProblem](api, "Too many failed attempts; see Retry-After."),
		},
	}), issueToken(d))
	relaxFormBody(api, http.MethodPost, tokenURL, formBody(map[string]string{
		"grant_type":    "password, client_credentials or refresh_token",
		"username":      "email (password grant)",
		"password":      "password (password grant)",
		"client_id":     "client id (client_credentials, unless sent with HTTP Basic)",
		"client_secret": "client secret (client_credentials, unless sent with HTTP Basic)",
		"refresh_token": "refresh token (refresh_token grant)",
	}, "grant_type"))
	huma.Register(v1, public(huma.Operation{
		OperationID: "revoke-token", Method: http.MethodPost, Path: "/oauth/revoke",
		Summary: "Revoke a refresh token (sign out)", Description: "RFC 7009: revokes the token and every token rotated from the same sign-in.",
		Tags: []string{"Public: auth"}, DefaultStatus: http.StatusOK,
		Responses: map[string]*huma.Response{
			"400": problemResponse[oauthProblem](api, "invalid_request: the body has no token"),
		},
	}), revokeToken(d))
	relaxFormBody(api, http.MethodPost, "/v1/oauth/revoke", formBody(map[string]string{"token": "the refresh token"}, "token"))
	huma.Register(v1, public(huma.Operation{
		OperationID: "get-status-page", Method: http.MethodGet, Path: "/public/status/{slug}",
		Summary: "A published monitor's status page", Tags: []string{"Public: status pages"},
		Description: "The name, state, uptime over 24 h and 7 days and the latest checks of the monitor published " +
			"under this slug (its `public_slug`). Needs no token.",
		Responses: map[string]*huma.Response{
			"404": problemResponse[huma.ErrorModel](api, "No monitor is published under this slug."),
			"422": problemResponse[huma.ErrorModel](api, "The slug is not a valid slug."),
		},
	}), getStatusPage(d))

	// Private: the caller's own monitors, checks, results and jobs.
	huma.Register(v1, private(huma.Operation{
		OperationID: "get-me", Method: http.MethodGet, Path: "/me",
		Summary: "The signed-in user", Tags: []string{"Account"},
		Description: "The account the access token belongs to.",
	}), getMe(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "list-clients", Method: http.MethodGet, Path: "/clients",
		Summary: "List my API clients", Tags: []string{"Account"},
		Description: "Your API clients, revoked ones included, by id. Secrets are never listed.",
	}), listClients(d, false))
	huma.Register(v1, private(huma.Operation{
		OperationID: "create-client", Method: http.MethodPost, Path: "/clients",
		Summary: "Create an API client", Description: "The client secret is shown once, in this response.",
		Tags: []string{"Account"}, DefaultStatus: http.StatusCreated,
	}), createClient(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "revoke-client", Method: http.MethodDelete, Path: "/clients/{id}",
		Summary: "Revoke one of my API clients", Tags: []string{"Account"}, DefaultStatus: http.StatusNoContent,
		Description: "The client can no longer get tokens, and its access tokens stop working at once. " +
			"Revoking a revoked client succeeds; another user's client answers 404.",
	}), revokeClient(d, false))

	huma.Register(v1, private(huma.Operation{
		OperationID: "list-monitors", Method: http.MethodGet, Path: "/monitors",
		Summary: "List monitors", Tags: []string{"Monitors"},
		Description: "Your monitors by id, paginated by `cursor`.",
	}), listMonitors(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "create-monitor", Method: http.MethodPost, Path: "/monitors",
		Summary: "Create a monitor", Tags: []string{"Monitors"}, DefaultStatus: http.StatusCreated,
		Description: "Registers an HTTP endpoint to check on schedule; Location names the new monitor. " +
			"A `public_slug` already taken answers 409.",
	}), createMonitor(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "get-monitor", Method: http.MethodGet, Path: "/monitors/{id}",
		Summary: "Get a monitor", Tags: []string{"Monitors"},
		Description: "One of your monitors, with its current state; another user's monitor answers 404.",
	}), getMonitor(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "update-monitor", Method: http.MethodPatch, Path: "/monitors/{id}",
		Summary: "Update a monitor", Description: "Changes only the fields present in the body.",
		Tags: []string{"Monitors"},
	}), updateMonitor(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "delete-monitor", Method: http.MethodDelete, Path: "/monitors/{id}",
		Summary: "Delete a monitor and its results", Tags: []string{"Monitors"}, DefaultStatus: http.StatusNoContent,
		Description: "Stops its checks and deletes its results and its status page.",
	}), deleteMonitor(d))

	huma.Register(v1, private(huma.Operation{
		OperationID: "run-check", Method: http.MethodPost, Path: "/monitors/{id}/checks",
		Summary: "Run a check now",
		Description: "Enqueues a check. Without `wait` it answers 202 at once with the job to follow; " +
			"with `wait` it answers 200 with the result if the check ends within that many seconds, else 202.",
		Tags: []string{"Checks"}, DefaultStatus: http.StatusAccepted,
		Responses: map[string]*huma.Response{"200": {Description: "The check finished within `wait`."}},
	}), runCheck(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "list-results", Method: http.MethodGet, Path: "/monitors/{id}/results",
		Summary: "List check results", Description: "Newest first, paginated by `cursor`.", Tags: []string{"Checks"},
	}), listResults(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "get-stats", Method: http.MethodGet, Path: "/monitors/{id}/stats",
		Summary:     "Uptime and latency per time bucket",
		Description: "Check count, successes, uptime ratio and p50/p95/p99 latency per bucket; buckets without checks are omitted.",
		Tags:        []string{"Checks"},
	}), getStats(d))
	huma.Register(v1, private(huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/jobs/{id}",
		Summary: "Get a job's state, attempts, errors and output", Tags: []string{"Jobs"},
		Description: "A background job, such as the one `run-check` returns. A check job is visible to the " +
			"monitor's owner, other jobs to admins; anyone else gets 404.",
	}), getJob(d))

	// Admin: accounts and every API client.
	huma.Register(v1, admin(huma.Operation{
		OperationID: "list-users", Method: http.MethodGet, Path: "/admin/users",
		Summary: "List users", Tags: []string{"Admin"},
		Description: "Every account, by id.",
	}), listUsers(d))
	huma.Register(v1, admin(huma.Operation{
		OperationID: "create-user", Method: http.MethodPost, Path: "/admin/users",
		Summary: "Create a user", Tags: []string{"Admin"}, DefaultStatus: http.StatusCreated,
		Description: "Adds an account that signs in with this email and password; an email in use answers 409.",
	}), createUser(d))
	huma.Register(v1, admin(huma.Operation{
		OperationID: "delete-user", Method: http.MethodDelete, Path: "/admin/users/{id}",
		Summary: "Delete a user with their monitors and clients", Tags: []string{"Admin"}, DefaultStatus: http.StatusNoContent,
		Description: "Their tokens stop working at once. An admin cannot delete their own account (409).",
	}), deleteUser(d))
	huma.Register(v1, admin(huma.Operation{
		OperationID: "update-user", Method: http.MethodPatch, Path: "/admin/users/{id}",
		Summary: "Change a user's role, or disable or enable them", Tags: []string{"Admin"},
		Description: "Takes effect at once on every replica: a disabled user's tokens stop working, a demoted admin " +
			"loses admin operations. The last enabled admin can be neither demoted nor disabled (409).",
	}), updateUser(d))
	huma.Register(v1, admin(huma.Operation{
		OperationID: "list-all-clients", Method: http.MethodGet, Path: "/admin/clients",
		Summary: "List every API client", Tags: []string{"Admin"},
		Description: "Every user's API clients, revoked ones included, by id. Secrets are never listed.",
	}), listClients(d, true))
	huma.Register(v1, admin(huma.Operation{
		OperationID: "revoke-any-client", Method: http.MethodDelete, Path: "/admin/clients/{id}",
		Summary: "Revoke any API client", Tags: []string{"Admin"}, DefaultStatus: http.StatusNoContent,
		Description: "Like revoke-client, for any user's client: its access tokens stop working at once.",
	}), revokeClient(d, true))
}

// adminOnly guards a handler outside huma (River UI) with the same rules.
func adminOnly(d Deps, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := AuthenticateRequest(d.Auth, r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="beacon"`)
			writeProblem(w, http.StatusUnauthorized, "a valid access token is required")
			return
		}
		if !p.IsAdmin() {
			writeProblem(w, http.StatusForbidden, "River UI is for admins")
			return
		}
		next.ServeHTTP(w, r)
	})
}
