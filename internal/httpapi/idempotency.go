package httpapi

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/idempotency"
)

// IdempotencyHeader is the optional header that makes a creating POST safe to
// retry: a retry with the same key answers what the first request did and
// creates nothing.
type IdempotencyHeader struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes a retry safe: a request repeated with the same key (per user, for 24 h) answers the first response and creates nothing"`
}

// idempotent runs create at most once for key (the caller's, per user),
// with its answer stored in the same transaction; a retry gets the stored
// answer, decoded, and replayed true. operation and request identify the
// request: the same key for another request is a 422.
func idempotent[T any](ctx context.Context, d Deps, key, operation string, request any,
	create func(tx pgx.Tx) (T, error)) (out T, replayed bool, err error) {
	fp, err := idempotency.Fingerprint(operation, request)
	if err != nil {
		return out, false, err
	}
	resp, replayed, err := d.Idempotency.Do(ctx, owner(ctx), key, fp, func(tx pgx.Tx) (idempotency.Response, error) {
		v, err := create(tx)
		if err != nil {
			return idempotency.Response{}, err
		}
		body, err := json.Marshal(v)
		return idempotency.Response{Status: 200, Body: body}, err
	})
	if err != nil {
		return out, false, err
	}
	err = json.Unmarshal(resp.Body, &out)
	return out, replayed, err
}
