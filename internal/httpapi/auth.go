package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/httpx"
	"github.com/beaconhq/beacon/internal/page"
)

// Security scheme names in the OpenAPI document.
const (
	schemeOAuth2 = "oauth2"
	schemeBearer = "bearer"
)

// Access levels of an operation, kept in its metadata.
const (
	accessKey    = "beacon.access"
	accessPublic = "public"
	accessUser   = "user"
	accessAdmin  = "admin"
)

// tokenURL is the OAuth2 token endpoint.
const tokenURL = "/v1/oauth/token"

func securitySchemes() map[string]*huma.SecurityScheme {
	return map[string]*huma.SecurityScheme{
		schemeOAuth2: {
			Type:        "oauth2",
			Description: "Password grant for people, client credentials for machine clients.",
			Flows: &huma.OAuthFlows{
				Password:          &huma.OAuthFlow{TokenURL: tokenURL, Scopes: map[string]string{}},
				ClientCredentials: &huma.OAuthFlow{TokenURL: tokenURL, Scopes: map[string]string{}},
			},
		},
		schemeBearer: {Type: "http", Scheme: "bearer", BearerFormat: "JWT"},
	}
}

// public, private and admin declare who may call an operation; every
// operation has one (the authorization test checks that).
func public(op huma.Operation) huma.Operation {
	op.Metadata = map[string]any{accessKey: accessPublic}
	op.Security = []map[string][]string{} // explicitly none
	return op
}

func private(op huma.Operation) huma.Operation {
	op.Metadata = map[string]any{accessKey: accessUser}
	op.Security = []map[string][]string{{schemeOAuth2: {}}, {schemeBearer: {}}}
	op.Responses = withAuthErrors(op.Responses, false)
	return op
}

func admin(op huma.Operation) huma.Operation {
	op = private(op)
	op.Metadata[accessKey] = accessAdmin
	op.Responses = withAuthErrors(op.Responses, true)
	return op
}

func withAuthErrors(r map[string]*huma.Response, forbidden bool) map[string]*huma.Response {
	if r == nil {
		r = map[string]*huma.Response{}
	}
	r["401"] = &huma.Response{Description: "Missing, invalid or expired access token."}
	if forbidden {
		r["403"] = &huma.Response{Description: "The caller is not an admin."}
	}
	return r
}

// requireAuth enforces an operation's access level. Anything not declared
// public needs a valid token: forgetting to declare is safe.
func requireAuth(api huma.API, svc *auth.Service) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		access, _ := ctx.Operation().Metadata[accessKey].(string)
		if access == accessPublic {
			next(ctx)
			return
		}
		p, err := authenticate(ctx.Context(), svc, ctx.Header("Authorization"))
		if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
			// The token could not be checked (database unreachable): not
			// the client's fault, and worth retrying shortly.
			ctx.SetHeader("Retry-After", retryAfter)
			_ = huma.WriteErr(api, ctx, http.StatusServiceUnavailable, "cannot check the token now; retry shortly")
			return
		}
		if err != nil {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="beacon", error="invalid_token"`)
			_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "a valid access token is required")
			return
		}
		if access != accessUser && !p.IsAdmin() {
			// Unknown levels are treated as admin-only.
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "this operation is for admins")
			return
		}
		next(huma.WithContext(ctx, auth.WithPrincipal(ctx.Context(), p)))
	}
}

// authenticate reads "Authorization: Bearer <token>".
func authenticate(ctx context.Context, svc *auth.Service, header string) (auth.Principal, error) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || svc == nil {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return svc.Authenticate(ctx, strings.TrimSpace(token))
}

// AuthenticateRequest authenticates an HTTP request's bearer token, for
// handlers outside huma (websocket, River UI).
func AuthenticateRequest(svc *auth.Service, r *http.Request) (auth.Principal, error) {
	return authenticate(r.Context(), svc, r.Header.Get("Authorization"))
}

// owner is the user whose resources an operation may touch. requireAuth put
// the principal there; without one nothing matches (id 0 owns nothing).
func owner(ctx context.Context) int64 {
	p, _ := auth.PrincipalFrom(ctx)
	return p.UserID
}

// ---- The token endpoint (RFC 6749 section 3.2).

// formBody documents a form-encoded request body.
func formBody(fields map[string]string, required ...string) *huma.RequestBody {
	props := map[string]*huma.Schema{}
	for name, doc := range fields {
		props[name] = &huma.Schema{Type: "string", Description: doc}
	}
	return &huma.RequestBody{
		Required: false,
		Content: map[string]*huma.MediaType{"application/x-www-form-urlencoded": {
			Schema: &huma.Schema{Type: "object", Properties: props, Required: required},
		}},
	}
}

// tokenInput is the form-encoded token request.
type tokenInput struct {
	Authorization string `header:"Authorization" doc:"HTTP Basic client authentication (client_credentials)"`
	RawBody       []byte `contentType:"application/x-www-form-urlencoded" required:"false"`
}

type tokenOutput struct {
	CacheControl string `header:"Cache-Control"`
	Pragma       string `header:"Pragma"`
	Body         auth.Token
}

// oauthProblem is an RFC 9457 problem that is also an RFC 6749 error
// response: "error" and "error_description" are extension members.
type oauthProblem struct {
	huma.ErrorModel
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func oauthError(e *auth.OAuthError) error {
	status := http.StatusBadRequest
	switch e.Code {
	case "invalid_client":
		status = http.StatusUnauthorized
	case "slow_down":
		status = http.StatusTooManyRequests
	}
	p := &oauthProblem{
		ErrorModel:  huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: e.Description},
		Code:        e.Code,
		Description: e.Description,
	}
	h := http.Header{"Cache-Control": {"no-store"}}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="beacon"`)
	}
	return huma.ErrorWithHeaders(p, h)
}

func issueToken(d Deps) func(context.Context, *tokenInput) (*tokenOutput, error) {
	return func(ctx context.Context, in *tokenInput) (*tokenOutput, error) {
		form, err := url.ParseQuery(string(in.RawBody))
		if err != nil {
			return nil, oauthError(&auth.OAuthError{Code: "invalid_request", Description: "the body must be application/x-www-form-urlencoded"})
		}
		remote, _ := ctx.Value(remoteKey{}).(string)
		var tok auth.Token
		switch form.Get("grant_type") {
		case "password":
			if form.Get("username") == "" || form.Get("password") == "" {
				return nil, oauthError(&auth.OAuthError{Code: "invalid_request", Description: "username and password are required"})
			}
			tok, err = d.Auth.PasswordGrant(ctx, form.Get("username"), form.Get("password"), remote)
		case "client_credentials":
			id, secret := form.Get("client_id"), form.Get("client_secret")
			if u, p, ok := parseBasic(in.Authorization); ok {
				id, secret = u, p
			}
			if id == "" || secret == "" {
				return nil, oauthError(&auth.OAuthError{Code: "invalid_client", Description: "client_id and client_secret are required"})
			}
			tok, err = d.Auth.ClientCredentialsGrant(ctx, id, secret, remote)
		case "refresh_token":
			if form.Get("refresh_token") == "" {
				return nil, oauthError(&auth.OAuthError{Code: "invalid_request", Description: "refresh_token is required"})
			}
			tok, err = d.Auth.RefreshGrant(ctx, form.Get("refresh_token"))
		case "":
			return nil, oauthError(&auth.OAuthError{Code: "invalid_request", Description: "grant_type is required"})
		default:
			return nil, oauthError(&auth.OAuthError{Code: "unsupported_grant_type", Description: "supported: password, client_credentials, refresh_token"})
		}
		var oe *auth.OAuthError
		if errors.As(err, &oe) {
			return nil, oauthError(oe)
		}
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return &tokenOutput{CacheControl: "no-store", Pragma: "no-cache", Body: tok}, nil
	}
}

func parseBasic(h string) (string, string, bool) {
	r := http.Request{Header: http.Header{"Authorization": {h}}}
	u, p, ok := r.BasicAuth()
	if !ok {
		return "", "", false
	}
	// RFC 6749 2.3.1: both are form-encoded inside Basic.
	u, err1 := url.QueryUnescape(u)
	p, err2 := url.QueryUnescape(p)
	return u, p, err1 == nil && err2 == nil
}

type remoteKey struct{}

// withRemote records the caller's address for the token endpoint's rate
// limits: the peer, or the client a trusted proxy (the dashboard) forwarded
// for. Without it, every sign-in through the dashboard would share its
// address, and five wrong passwords from anyone would lock an account out of
// the dashboard for everyone.
func withRemote(trusted []netip.Prefix) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		next(huma.WithValue(ctx, remoteKey{}, httpx.ClientIP(ctx.RemoteAddr(), ctx.Header("X-Forwarded-For"), trusted)))
	}
}

type revokeInput struct {
	RawBody []byte `contentType:"application/x-www-form-urlencoded" required:"false"`
}

func revokeToken(d Deps) func(context.Context, *revokeInput) (*struct{}, error) {
	return func(ctx context.Context, in *revokeInput) (*struct{}, error) {
		form, err := url.ParseQuery(string(in.RawBody))
		if err != nil || form.Get("token") == "" {
			return nil, oauthError(&auth.OAuthError{Code: "invalid_request", Description: "token is required"})
		}
		if err := d.Auth.RevokeRefresh(ctx, form.Get("token")); err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return nil, nil
	}
}

// ---- The caller, their clients, and admin operations.

type meOutput struct {
	Body auth.User
}

func getMe(d Deps) func(context.Context, *struct{}) (*meOutput, error) {
	return func(ctx context.Context, _ *struct{}) (*meOutput, error) {
		u, err := d.Auth.GetUser(ctx, owner(ctx))
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return &meOutput{Body: u}, nil
	}
}

type clientBody struct {
	IdempotencyHeader
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"200" example:"ci-pipeline"`
	}
}

type clientOutput struct {
	Body auth.Client
}

// listInput asks for a page of a list whose body is a bare array (it was
// before lists were paginated): the next page is in the Link header.
type listInput struct {
	Cursor string `query:"cursor" maxLength:"200" doc:"From the previous page's Link rel=\"next\""`
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"200"`
}

func (in listInput) request() page.Request { return page.Request{Cursor: in.Cursor, Limit: in.Limit} }

// nextLink is the RFC 8288 Link to the page after this one, or "".
func nextLink(path, next string, limit int) string {
	if next == "" {
		return ""
	}
	q := url.Values{"cursor": {next}, "limit": {strconv.Itoa(limit)}}
	return "<" + path + "?" + q.Encode() + `>; rel="next"`
}

type clientsOutput struct {
	Link string `header:"Link" doc:"The next page: <...?cursor=...>; rel=\"next\" (absent on the last page)"`
	Body []auth.Client
}

type idPath struct {
	ID int64 `path:"id" minimum:"1"`
}

func createClient(d Deps) func(context.Context, *clientBody) (*clientOutput, error) {
	return func(ctx context.Context, in *clientBody) (*clientOutput, error) {
		if in.IdempotencyKey == "" || d.Idempotency == nil {
			c, err := d.Auth.CreateClient(ctx, owner(ctx), in.Body.Name)
			if err != nil {
				return nil, problem(ctx, d.Log, BodyField(err))
			}
			return &clientOutput{Body: c}, nil
		}
		// The secret is not stored, not even for a retry: a retry answers
		// the client without it (revoke it and create another if the
		// first answer was lost).
		var secret string
		c, replayed, err := idempotent(ctx, d, in.IdempotencyKey, "create-client", in.Body, func(tx pgx.Tx) (auth.Client, error) {
			c, err := d.Auth.CreateClientTx(ctx, tx, owner(ctx), in.Body.Name)
			secret, c.Secret = c.Secret, ""
			return c, err
		})
		if err != nil {
			return nil, problem(ctx, d.Log, BodyField(err))
		}
		if !replayed {
			c.Secret = secret
		}
		return &clientOutput{Body: c}, nil
	}
}

func listClients(d Deps, all bool) func(context.Context, *listInput) (*clientsOutput, error) {
	return func(ctx context.Context, in *listInput) (*clientsOutput, error) {
		scope, path := auth.OwnedBy(owner(ctx)), "/v1/clients"
		if all {
			scope, path = auth.AllUsers(), "/v1/admin/clients"
		}
		cs, next, err := d.Auth.Clients(ctx, scope, in.request())
		if err != nil {
			return nil, problem(ctx, d.Log, QueryField(err))
		}
		if cs == nil {
			cs = []auth.Client{}
		}
		return &clientsOutput{Link: nextLink(path, next, in.Limit), Body: cs}, nil
	}
}

func revokeClient(d Deps, all bool) func(context.Context, *idPath) (*struct{}, error) {
	return func(ctx context.Context, in *idPath) (*struct{}, error) {
		scope := auth.OwnedBy(owner(ctx))
		if all {
			scope = auth.AllUsers()
		}
		if err := d.Auth.RevokeClient(ctx, scope, in.ID); err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return nil, nil
	}
}

type usersOutput struct {
	Link string `header:"Link" doc:"The next page: <...?cursor=...>; rel=\"next\" (absent on the last page)"`
	Body []auth.User
}

func listUsers(d Deps) func(context.Context, *listInput) (*usersOutput, error) {
	return func(ctx context.Context, in *listInput) (*usersOutput, error) {
		us, next, err := d.Auth.Users(ctx, in.request())
		if err != nil {
			return nil, problem(ctx, d.Log, QueryField(err))
		}
		return &usersOutput{Link: nextLink("/v1/admin/users", next, in.Limit), Body: us}, nil
	}
}

type userBody struct {
	Body struct {
		Email    string    `json:"email" format:"email" maxLength:"254"`
		Password string    `json:"password" minLength:"12" maxLength:"72"`
		Role     auth.Role `json:"role" enum:"admin,member"`
	}
}

func createUser(d Deps) func(context.Context, *userBody) (*struct {
	Body auth.User
}, error) {
	return func(ctx context.Context, in *userBody) (*struct {
		Body auth.User
	}, error) {
		u, err := d.Auth.CreateUser(ctx, in.Body.Email, in.Body.Password, in.Body.Role)
		if err != nil {
			return nil, problem(ctx, d.Log, BodyField(err))
		}
		return &struct{ Body auth.User }{Body: u}, nil
	}
}

// UserPatch is what an admin may change of a user (JSON merge: absent
// fields stay as they are).
type UserPatch struct {
	ID   int64 `path:"id" minimum:"1" doc:"User id"`
	Body struct {
		Role     *auth.Role `json:"role,omitempty" enum:"admin,member" doc:"New role; takes effect on the user's next request"`
		Disabled *bool      `json:"disabled,omitempty" doc:"true: the user can no longer sign in, and their tokens stop working at once"`
	}
}

// UserOutput is one user.
type UserOutput struct {
	Body auth.User
}

func updateUser(d Deps) func(context.Context, *UserPatch) (*UserOutput, error) {
	return func(ctx context.Context, in *UserPatch) (*UserOutput, error) {
		if in.ID == owner(ctx) {
			return nil, huma.Error409Conflict("an admin cannot demote or disable their own account")
		}
		u, err := d.Auth.UpdateUser(ctx, in.ID, auth.UserChange{Role: in.Body.Role, Disabled: in.Body.Disabled})
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return &UserOutput{Body: u}, nil
	}
}

func deleteUser(d Deps) func(context.Context, *idPath) (*struct{}, error) {
	return func(ctx context.Context, in *idPath) (*struct{}, error) {
		if in.ID == owner(ctx) {
			return nil, huma.Error409Conflict("an admin cannot delete their own account")
		}
		if err := d.Auth.DeleteUser(ctx, in.ID); err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return nil, nil
	}
}

// relaxFormBody replaces the request body huma derives from RawBody (a
// required binary string) with body, once the operation is registered: the
// form's fields get documented, and an empty body reaches the handler, which
// answers with an RFC 6749 error instead of a generic one.
func relaxFormBody(api huma.API, method, path string, body *huma.RequestBody) {
	item := api.OpenAPI().Paths[path]
	if item == nil {
		panic("relaxFormBody: no operation at " + path)
	}
	var op *huma.Operation
	switch method {
	case http.MethodPost:
		op = item.Post
	}
	if op == nil || op.RequestBody == nil {
		panic("relaxFormBody: no " + method + " " + path)
	}
	*op.RequestBody = *body
}
