// Package idempotency makes creating requests safe to retry: a request sent
// with an Idempotency-Key is answered once, and a retry with the same key
// gets the first answer back instead of creating again.
//
// The answer is stored in the transaction that makes the change, so either
// both are committed or neither: a retry after a crash, a 503 or a dropped
// connection finds the change made exactly once. Two requests with the same
// key at the same moment are serialised by the key's row.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/idempotency/idempotencydb"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// TTL is how long a key is remembered.
const TTL = 24 * time.Hour

// Store keeps keys and answers in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Response is a stored answer: its status and JSON body.
type Response struct {
	Status int
	Body   json.RawMessage
}

// Fingerprint identifies a request, so that a key reused for another
// request is refused rather than answered with an unrelated response.
func Fingerprint(operation string, body any) ([]byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(append([]byte(operation+"\x00"), raw...))
	return h[:], nil
}

// ValidKey reports whether key may be used: 1 to 255 printable ASCII characters.
func ValidKey(key string) error {
	if len(key) < 1 || len(key) > 255 {
		return apperr.InvalidField("header."+Header, "must be 1 to 255 characters")
	}
	for _, c := range []byte(key) {
		if c < 0x20 || c > 0x7e {
			return apperr.InvalidField("header."+Header, "must be printable ASCII")
		}
	}
	return nil
}

// Do runs create once per (owner, key): the first time, in a transaction in
// which its answer is stored with the key; afterwards it returns the stored
// answer (replayed true) without running it. A key used before for another
// request (another fingerprint) is Invalid (422). An error from create rolls
// everything back and stores nothing, so the request may be retried.
func (s *Store) Do(ctx context.Context, owner int64, key string, fingerprint []byte,
	create func(tx pgx.Tx) (Response, error)) (resp Response, replayed bool, err error) {
	if err := ValidKey(key); err != nil {
		return Response{}, false, err
	}
	err = database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		q := idempotencydb.New(tx)
		// Claims the key; a concurrent request with the same key waits
		// here until this transaction ends, then finds the answer.
		n, err := q.ClaimKey(ctx, idempotencydb.ClaimKeyParams{OwnerID: owner, Key: key, RequestHash: fingerprint,
			TTL: pgtype.Interval{Microseconds: TTL.Microseconds(), Valid: true}})
		if err != nil {
			return err
		}
		if n == 0 { // a live key: replay its answer
			a, err := q.GetAnswer(ctx, idempotencydb.GetAnswerParams{OwnerID: owner, Key: key})
			if err != nil {
				return err
			}
			if string(a.RequestHash) != string(fingerprint) {
				return apperr.InvalidField("header."+Header, "this key was used for another request")
			}
			resp, replayed = Response{Status: int(a.Status), Body: a.Body}, true
			return nil
		}
		if resp, err = create(tx); err != nil {
			return err
		}
		if err := q.SaveAnswer(ctx, idempotencydb.SaveAnswerParams{OwnerID: owner, Key: key,
			Status: int32(resp.Status), Body: resp.Body}); err != nil {
			return err
		}
		// Keep the table small without a cron.
		return q.DeleteExpired(ctx)
	})
	var ae *apperr.Error
	if err != nil && !errors.As(err, &ae) {
		err = fmt.Errorf("idempotent request: %w", err)
	}
	return resp, replayed, err
}
