package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	problemdoc "github.com/beaconhq/beacon/internal/problem"
)

// problem maps an error to the RFC 9457 problem a client sees. It is the one
// place where domain errors become HTTP statuses; anything unclassified is
// logged and answered with a bare 500, so no SQL or internal text leaks.
func problem(ctx context.Context, log *slog.Logger, err error) error {
	if database.Unavailable(err) {
		return unavailable(ctx, log, err)
	}
	e, ok := apperr.As(err)
	if !ok {
		if ctx.Err() != nil {
			// The client went away or its deadline passed: nothing to report.
			return huma.Error503ServiceUnavailable("request cancelled")
		}
		log.ErrorContext(ctx, "request failed", "error", err)
		return huma.Error500InternalServerError("internal error")
	}
	switch e.Code {
	case apperr.NotFound:
		return huma.Error404NotFound(e.Message)
	case apperr.Invalid:
		if e.Field != "" {
			return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
				Location: e.Field, Message: e.Message,
			})
		}
		return huma.Error422UnprocessableEntity(e.Message)
	case apperr.Conflict:
		return huma.Error409Conflict(e.Message)
	case apperr.Unavailable:
		return huma.Error503ServiceUnavailable(e.Message)
	default:
		log.ErrorContext(ctx, "request failed", "error", err)
		return huma.Error500InternalServerError("internal error")
	}
}

// retryAfter is what a client is told to wait when PostgreSQL is
// unreachable: a restart or failover takes seconds.
const retryAfter = "2"

// unavailable is the answer while PostgreSQL is unreachable: a 503 with
// Retry-After, so clients and load balancers tell an outage from a bug.
func unavailable(ctx context.Context, log *slog.Logger, err error) error {
	log.WarnContext(ctx, "database unavailable", "error", err)
	return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("database unavailable; retry shortly"),
		http.Header{"Retry-After": {retryAfter}})
}

// writeProblem answers outside huma (unknown routes, panics, River UI) with
// the same problem document huma writes.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	problemdoc.Write(w, status, detail)
}
