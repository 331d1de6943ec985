package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

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
	if invalidText(err) {
		return huma.Error422UnprocessableEntity("invalid text: NUL characters and invalid UTF-8 are not accepted")
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

// invalidText reports whether PostgreSQL refused text a client sent: a NUL
// character, or bytes that are not UTF-8. Whatever field carried it, that is
// the client's mistake, not ours, and nothing was stored.
func invalidText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) &&
		(pgErr.Code == pgerrcode.CharacterNotInRepertoire || pgErr.Code == pgerrcode.UntranslatableCharacter)
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

// maxEchoed bounds what an error detail may quote of the request: huma
// quotes the invalid value (for a malformed body, the whole body), and a
// client sending 900 KB must not get 900 KB back.
const maxEchoed = 128

func init() {
	// huma's documented customisation point; every huma error is made here.
	base := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		se := base(status, msg, errs...)
		if m, ok := se.(*huma.ErrorModel); ok {
			for _, d := range m.Errors {
				if d != nil {
					d.Value = boundEcho(d.Value)
				}
			}
		}
		return se
	}
}

// boundEcho returns v if it is short, a cut string if it is a long one, and
// nothing otherwise.
func boundEcho(v any) any {
	switch x := v.(type) {
	case nil, bool, int, int64, float64:
		return v
	case string:
		if len(x) <= maxEchoed {
			return x
		}
		cut := maxEchoed
		for cut > 0 && !utf8.RuneStart(x[cut]) {
			cut--
		}
		return x[:cut] + "…"
	case []byte:
		return boundEcho(string(x))
	default:
		if s := fmt.Sprint(v); len(s) <= maxEchoed {
			return v
		}
		return nil
	}
}
