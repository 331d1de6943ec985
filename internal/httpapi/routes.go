package httpapi

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/beaconhq/beacon/internal/httpapi/docsui"
)

// apiTags are the groups of operations in the docs, in this order: the
// platform's, then the domains'. Every tag an operation uses must be
// declared (make lint checks it).
func apiTags(domains []Routes) []*huma.Tag {
	tags := []*huma.Tag{
		{Name: "Public: auth", Description: "Sign in and out: the OAuth2 token and revocation endpoints. No access token needed."},
		{Name: "Account", Description: "The signed-in user and their API clients, the credentials of the client_credentials grant."},
	}
	for _, r := range domains {
		tags = append(tags, r.Tags...)
	}
	return append(tags,
		&huma.Tag{Name: "Jobs", Description: "Background jobs, such as a check run on demand: state, attempts, errors and output."},
		&huma.Tag{Name: "Admin", Description: "Every account and every API client. Admins only (403 for others)."},
	)
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
	// Private: the caller's account and jobs.
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
		OperationID: "get-job", Method: http.MethodGet, Path: "/jobs/{id}",
		Summary: "Get a job's state, attempts, errors and output", Tags: []string{"Jobs"},
		Description: "A background job, such as one an operation returned. A domain's job is visible to whom " +
			"the domain says (a check job to the monitor's owner), other jobs to admins; anyone else gets 404.",
	}), getJob(d))

	// The domains' operations.
	for _, r := range d.Routes {
		r.Register(v1, d)
	}

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
