package database

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs statements: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts transactions: a pool, a connection or a transaction
// (which starts a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

type txKey struct{}

// WithTx returns ctx carrying tx: InTx and Q called with it join tx instead
// of starting on their own. A caller that must store something in the same
// transaction as a service operation (an idempotent request's answer) runs
// the operation with this context.
func WithTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// TxFrom returns the transaction ctx carries, if any.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

// InTx runs fn in a transaction, committed if fn returns nil and rolled back
// otherwise. It is the one way Beacon opens a transaction. When ctx carries
// one (WithTx), fn runs in a savepoint of it, so an operation composes into
// its caller's transaction. fn gets a context carrying the transaction.
func InTx(ctx context.Context, db Beginner, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if outer, ok := TxFrom(ctx); ok {
		db = outer
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		return fn(WithTx(ctx, tx), tx)
	})
}

// Q returns the transaction ctx carries, else q: what a read runs on, so it
// sees its caller's uncommitted writes.
func Q(ctx context.Context, q Querier) Querier {
	if tx, ok := TxFrom(ctx); ok {
		return tx
	}
	return q
}
