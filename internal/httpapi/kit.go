package httpapi

import (
	"context"
	"log/slog"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/database"
)

// This file is the API's kit for domains: what a domain's routes use to
// declare access, map errors and read the caller. A domain's HTTP package
// translates between HTTP and its service with these, nothing more.

// Routes is a domain's part of the API, registered with Deps.Routes.
type Routes struct {
	// Tags group the domain's operations in the docs, after the platform's.
	Tags []*huma.Tag
	// Register adds the domain's operations to v1, the /v1 group (readiness
	// gate and authentication applied). Every operation is declared with
	// Public, Private or Admin.
	Register func(v1 huma.API, d Deps)
	// JobAccess says, by job kind, who may see a job of the domain at
	// GET /v1/jobs/{id}; a kind not listed is visible to admins only.
	JobAccess map[string]JobAccess
}

// JobAccess reports whether p may see the job row (a 404 otherwise).
type JobAccess func(ctx context.Context, p auth.Principal, row *rivertype.JobRow) (bool, error)

// Public declares an operation anyone may call, without a token.
func Public(op huma.Operation) huma.Operation { return public(op) }

// Private declares an operation on the caller's own data: a token is needed.
func Private(op huma.Operation) huma.Operation { return private(op) }

// Admin declares an operation for admins only (403 for others).
func Admin(op huma.Operation) huma.Operation { return admin(op) }

// Problem maps err to the RFC 9457 problem the client sees: apperr codes to
// 404, 409, 422, 503; an unreachable database to 503 with Retry-After;
// anything else to a logged, bare 500.
func Problem(ctx context.Context, log *slog.Logger, err error) error { return problem(ctx, log, err) }

// Caller is the signed-in principal of a private or admin operation.
func Caller(ctx context.Context) auth.Principal {
	p, _ := auth.PrincipalFrom(ctx)
	return p
}

// BodyField locates a domain validation error in the request body, the way
// huma locates its own ("body.url").
func BodyField(err error) error { return inField("body.", err) }

// QueryField locates a domain validation error in the query string.
func QueryField(err error) error { return inField("query.", err) }

func inField(prefix string, err error) error {
	if e, ok := apperr.As(err); ok && e.Code == apperr.Invalid && e.Field != "" {
		c := *e
		c.Field = prefix + e.Field
		return &c
	}
	return err
}

// Idempotent runs op at most once per Idempotency-Key of the caller: op
// runs with a context carrying the transaction that stores its answer, so a
// service operation joins it (database.InTx); a retry gets the stored answer
// and replayed true. Without a key (or a store) it just runs op. operation
// and request identify the request: the same key for another request is a
// 422.
func Idempotent[T any](ctx context.Context, d Deps, key, operation string, request any,
	op func(ctx context.Context) (T, error)) (out T, replayed bool, err error) {
	if key == "" || d.Idempotency == nil {
		out, err = op(ctx)
		return out, false, err
	}
	return idempotent(ctx, d, key, operation, request, func(tx pgx.Tx) (T, error) {
		return op(database.WithTx(ctx, tx))
	})
}

// ProblemResponse documents an error response whose body is a problem
// document shaped like T (huma.ErrorModel, or a type that extends it).
func ProblemResponse[T any](api huma.API, description string) *huma.Response {
	return problemResponse[T](api, description)
}
