package monitors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors/monitorsdb"
)

// Check results and their per-minute rollups live in daily partitions (UTC
// days), the hourly and daily rollups in monthly ones (migration 0002). Partitions are
// created ahead by the partition job (PruneWorker), and on demand for a day
// a result falls in that has none; retention drops whole partitions.

const day = 24 * time.Hour

// PartitionsAhead is how far ahead of now the partition job creates
// partitions: a week of writes go on if the job stops running.
const PartitionsAhead = 8 * day

// HourlyRollupRetention is how long hourly and daily rollups are kept when
// results are kept for less: a year of stats, plus a month.
const HourlyRollupRetention = 400 * day

// partitionDays remembers the days (Unix days) whose partitions exist.
type partitionDays struct {
	mu   sync.Mutex
	days map[int64]struct{}
}

func unixDay(t time.Time) int64 {
	d := t.Unix() / 86400
	if t.Unix() < 0 && t.Unix()%86400 != 0 {
		d-- // floor, before 1970
	}
	return d
}

// missing returns the days among ts not known to have partitions, once each.
func (p *partitionDays) missing(ts []time.Time) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int64
	for _, t := range ts {
		d := unixDay(t)
		if _, ok := p.days[d]; ok {
			continue
		}
		found := false
		for _, o := range out {
			found = found || o == d
		}
		if !found {
			out = append(out, d)
		}
	}
	return out
}

func (p *partitionDays) add(days []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.days == nil {
		p.days = map[int64]struct{}{}
	}
	for _, d := range days {
		p.days[d] = struct{}{}
	}
}

// forget forgets the days of ts.
func (p *partitionDays) forget(ts []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range ts {
		delete(p.days, unixDay(t))
	}
}

// forgetBefore forgets the days that end at or before t.
func (p *partitionDays) forgetBefore(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d := range p.days {
		if time.Unix((d+1)*86400, 0).Compare(t) <= 0 {
			delete(p.days, d)
		}
	}
}

// partitionLockTimeout bounds how long creating a partition waits for its
// locks (ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, SHARE ROW
// EXCLUSIVE on monitors for the foreign key): a creation that cannot get
// them fails rather than queue every writer behind it.
const partitionLockTimeout = "5s"

// ensurePartitions makes sure the days of ts have their partitions. A day
// this process has not seen yet is looked up in the catalog on q (the
// caller's transaction); only if a partition is missing is it created, in a
// transaction of its own on another connection (a partition must be
// committed before anyone can write into it). Normally the partition job
// created them days ahead, and no second connection is needed while the
// caller holds one.
func (s *Store) ensurePartitions(ctx context.Context, q database.Querier, ts []time.Time) error {
	days := s.parts.missing(ts)
	if len(days) == 0 {
		return nil
	}
	starts := make([]time.Time, len(days))
	var names []string
	for i, d := range days {
		starts[i] = time.Unix(d*86400, 0).UTC()
		day, month := starts[i].Format("20060102"), starts[i].Format("200601")
		names = append(names, "check_results_p"+day, "check_rollups_minute_p"+day,
			"check_rollups_hour_p"+month, "check_rollups_day_p"+month)
	}
	missing, err := monitorsdb.New(q).MissingPartitions(ctx, names)
	if err != nil {
		return fmt.Errorf("look up partitions: %w", err)
	}
	if missing == 0 {
		s.parts.add(days)
		return nil
	}
	err = database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		return monitorsdb.New(tx).EnsureDayPartitions(ctx, starts)
	})
	if err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	s.parts.add(days)
	return nil
}

// EnsurePartitions creates the partitions that hold [from, to) if missing,
// and returns how many it created.
func (s *Store) EnsurePartitions(ctx context.Context, from, to time.Time) (int, error) {
	var n int32
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		var err error
		n, err = monitorsdb.New(tx).EnsurePartitions(ctx, monitorsdb.EnsurePartitionsParams{FromAt: from, ToAt: to})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create partitions: %w", err)
	}
	return int(n), nil
}

// Partition is one partition of a partitioned table of this domain.
type Partition struct {
	Table string // the partitioned table
	Name  string
	// Upper is where its range ends (exclusive).
	Upper time.Time
}

// partitionsEndingBy lists the partitions of table whose range ends at or
// before t, oldest first (the legacy partition's range starts at MINVALUE).
// Its SQL stays here, not in queries.sql: sqlc's catalog has no pg_inherits.
func (s *Store) partitionsEndingBy(ctx context.Context, table string, t time.Time) ([]Partition, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname::text, ub
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		CROSS JOIN LATERAL (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS ub) b
		WHERE i.inhparent = $1::regclass AND ub <= $2
		ORDER BY ub`, table, t)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Partition, error) {
		p := Partition{Table: table}
		return p, r.Scan(&p.Name, &p.Upper)
	})
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	return ps, nil
}

// PruneResults drops the partitions of check results and per-minute
// rollups whose whole range is before resultsBefore, and those of hourly
// and daily rollups whose whole range is before rollupsBefore: a partition
// that straddles a cutoff stays until it is entirely older (see
// dropPartition). It returns what it dropped, oldest first per table.
func (s *Store) PruneResults(ctx context.Context, resultsBefore, rollupsBefore time.Time) ([]Partition, error) {
	if err := s.finishDetaches(ctx); err != nil {
		return nil, err
	}
	var dropped []Partition
	for _, c := range []struct {
		table  string
		before time.Time
	}{
		{"check_results", resultsBefore},
		{"check_rollups_minute", resultsBefore},
		{"check_rollups_hour", rollupsBefore},
		{"check_rollups_day", rollupsBefore},
	} {
		ps, err := s.partitionsEndingBy(ctx, c.table, c.before)
		if err != nil {
			return dropped, err
		}
		for _, p := range ps {
			if p.Name == c.table+"_default" {
				continue
			}
			if err := ctx.Err(); err != nil {
				return dropped, err
			}
			if err := s.dropPartition(ctx, p); err != nil {
				return dropped, err
			}
			dropped = append(dropped, p)
		}
	}
	// Old rows the default partition took (it should hold none).
	if err := monitorsdb.New(s.pool).PruneDefaultPartition(ctx, resultsBefore); err != nil {
		return dropped, fmt.Errorf("prune results: %w", err)
	}
	s.parts.forgetBefore(resultsBefore)
	return dropped, nil
}

// dropPartition detaches partition p and drops it. The rollups' are
// detached CONCURRENTLY: readers and writers of the table go on meanwhile
// (not in a transaction: PostgreSQL refuses it there). check_results has a
// default partition, with which PostgreSQL refuses CONCURRENTLY: its
// partitions are detached under a short lock_timeout, so that waiting for
// the table's lock never queues its readers and writers for long; a detach
// that times out is retried by the next run. The statements name the
// partition, which no parameter can: they are built here, not in queries.sql.
func (s *Store) dropPartition(ctx context.Context, p Partition) error {
	parent, part := pgx.Identifier{p.Table}.Sanitize(), pgx.Identifier{p.Name}.Sanitize()
	if p.Table == "check_results" {
		err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE `+parent+` DETACH PARTITION `+part); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+part)
			return err
		})
		if err != nil {
			return fmt.Errorf("drop partition %s: %w", p.Name, err)
		}
		return nil
	}
	if _, err := s.pool.Exec(ctx, `ALTER TABLE `+parent+` DETACH PARTITION `+part+` CONCURRENTLY`); err != nil {
		return fmt.Errorf("detach partition %s: %w", p.Name, err)
	}
	if _, err := s.pool.Exec(ctx, `DROP TABLE `+part); err != nil {
		return fmt.Errorf("drop partition %s: %w", p.Name, err)
	}
	return nil
}

// finishDetaches completes detaches interrupted half way (the second
// transaction of DETACH CONCURRENTLY never ran) and drops their tables.
// Like partitionsEndingBy's and dropPartition's, its SQL stays here.
func (s *Store) finishDetaches(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `
		SELECT p.relname::text, c.relname::text
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE i.inhdetachpending AND p.relname IN ('check_results', 'check_rollups_minute', 'check_rollups_hour', 'check_rollups_day')`)
	if err != nil {
		return fmt.Errorf("list pending detaches: %w", err)
	}
	pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	if err != nil {
		return fmt.Errorf("list pending detaches: %w", err)
	}
	for _, p := range pending {
		parent, part := pgx.Identifier{p[0]}.Sanitize(), pgx.Identifier{p[1]}.Sanitize()
		if _, err := s.pool.Exec(ctx, `ALTER TABLE `+parent+` DETACH PARTITION `+part+` FINALIZE`); err != nil {
			return fmt.Errorf("finish detaching %s: %w", p[1], err)
		}
		if _, err := s.pool.Exec(ctx, `DROP TABLE `+part); err != nil {
			return fmt.Errorf("drop partition %s: %w", p[1], err)
		}
	}
	return nil
}
