-- Check results partitioned by day, and rollups of them per minute and per
-- hour (docs/capacity.md).
--
-- Retention drops whole partitions (no bulk DELETE, no vacuum storm), and
-- stats over long ranges read rollups instead of every result.
--
-- Daily partitions, not weekly: at 20,000 monitors checked every minute a day
-- is 28.8 M rows, a week 200 M; a day keeps a partition small enough to drop
-- and index, and keeps a result at most one day past the retention period.
--
-- Today's table is kept as it is, as one partition ("legacy") holding
-- everything before tomorrow: ATTACH reuses its indexes (same definitions)
-- and only scans it once to check its bounds, where moving the rows would
-- rewrite them and their indexes. It is dropped whole once its newest
-- possible row is past the retention period.

-- Latency bins of the rollups. Bin 0 holds [0, 1/128 ms); bin k >= 1 holds
-- [2^((k-1)/8 - 7), 2^(k/8 - 7)) ms: eighth-octave wide, so the bin's
-- geometric midpoint is within 2^(1/16) - 1 = 4.43 % of any value in it.
-- Bin 192 ends at 2^17 ms (131 s, above any check's timeout) and also takes
-- anything longer. Go's latencyBinValue is the other half of this definition.
CREATE FUNCTION check_latency_bin(ms double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN ms < 0.0078125 THEN 0
                ELSE least(192, floor(ln(ms / 0.0078125) * 11.541560327111707) + 1) END;

-- check_results_attach creates partition part of parent for [lo, hi), unless
-- it exists or another partition (the legacy one) covers that range. It
-- creates a plain table and attaches it: ATTACH takes SHARE UPDATE EXCLUSIVE
-- on the parent, where CREATE TABLE ... PARTITION OF takes ACCESS EXCLUSIVE
-- and would stop every read and write of the table while it waits.
CREATE FUNCTION check_results_attach(parent text, key text, part text, lo timestamptz, hi timestamptz) RETURNS integer
    LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN 0;
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
        -- Rows the default partition took for this range move to their own.
        IF to_regclass(parent || '_default') IS NOT NULL THEN
            EXECUTE format('WITH m AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) INSERT INTO %I SELECT * FROM m',
                parent || '_default', key, lo, key, hi, part);
        END IF;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    EXCEPTION WHEN invalid_object_definition THEN -- overlaps an existing partition
        RETURN 0;
    END;
    RETURN 1;
END $$;

-- check_results_ensure_partitions creates the partitions that hold [lo, hi):
-- daily ones of check_results and check_rollups_minute, monthly ones of
-- check_rollups_hour and check_rollups_day (all in UTC). It returns how many it created. The
-- periodic partition job calls it for the coming days, and the store for the
-- days of results it is about to write when it has not seen them yet.
CREATE FUNCTION check_results_ensure_partitions(lo timestamptz, hi timestamptz) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    d timestamptz := date_bin('1 day', lo, timestamptz 'epoch');
    m timestamp := date_trunc('month', lo AT TIME ZONE 'UTC');
    n integer := 0;
BEGIN
    -- One creator at a time: concurrent ones would collide on the names.
    PERFORM pg_advisory_xact_lock(hashtext('check_results_ensure_partitions'));
    WHILE d < hi LOOP
        n := n + check_results_attach('check_results', 'checked_at', 'check_results_p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'),
            d, d + interval '24 hours');
        n := n + check_results_attach('check_rollups_minute', 'bucket', 'check_rollups_minute_p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'),
            d, d + interval '24 hours');
        d := d + interval '24 hours';
    END LOOP;
    WHILE (m AT TIME ZONE 'UTC') < hi LOOP
        n := n + check_results_attach('check_rollups_hour', 'bucket', 'check_rollups_hour_p' || to_char(m, 'YYYYMM'),
            m AT TIME ZONE 'UTC', (m + interval '1 month') AT TIME ZONE 'UTC');
        n := n + check_results_attach('check_rollups_day', 'bucket', 'check_rollups_day_p' || to_char(m, 'YYYYMM'),
            m AT TIME ZONE 'UTC', (m + interval '1 month') AT TIME ZONE 'UTC');
        m := m + interval '1 month';
    END LOOP;
    RETURN n;
END $$;

-- Today's table becomes the legacy partition: its identity moves to the new
-- parent (same sequence position), its primary key goes (see below), its
-- other indexes keep their definitions so that ATTACH adopts them.
ALTER TABLE check_results RENAME TO check_results_legacy;
ALTER INDEX check_results_monitor_time_idx RENAME TO check_results_legacy_monitor_time_idx;
ALTER INDEX check_results_job_idx RENAME TO check_results_legacy_job_idx;
-- Only the batch DELETE of the former retention used it.
DROP INDEX check_results_checked_at_idx;
ALTER TABLE check_results_legacy DROP CONSTRAINT check_results_pkey;

CREATE TEMPORARY TABLE check_results_seq ON COMMIT DROP AS
    SELECT last_value, is_called FROM check_results_id_seq;
ALTER TABLE check_results_legacy ALTER COLUMN id DROP IDENTITY;

-- No primary key: ids come from one sequence, so they are unique already,
-- and a key on a partitioned table must include checked_at: (id,
-- checked_at) would cost an index on every insert that no query uses
-- (results are found by monitor and time, or by job; ids are only named in
-- job outputs).
CREATE TABLE check_results (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    monitor_id  bigint           NOT NULL,
    job_id      bigint,
    checked_at  timestamptz      NOT NULL,
    duration_ms double precision NOT NULL,
    status_code integer,
    ok          boolean          NOT NULL,
    error_kind  text,
    error       text,
    CONSTRAINT check_results_monitor_id_fkey FOREIGN KEY (monitor_id) REFERENCES monitors (id) ON DELETE CASCADE,
    CONSTRAINT check_results_duration_ms_check CHECK (duration_ms >= 0)
) PARTITION BY RANGE (checked_at);

-- Serves the paginated listing (newest first), the latest results and the
-- raw stats range scan as an index-only scan.
CREATE INDEX check_results_monitor_time_idx
    ON check_results (monitor_id, checked_at DESC, id DESC) INCLUDE (ok, duration_ms);
CREATE INDEX check_results_job_idx ON check_results (job_id) WHERE job_id IS NOT NULL;

SELECT setval(pg_get_serial_sequence('check_results', 'id'), last_value, is_called) FROM check_results_seq;

-- Rollups: per monitor and time bucket, how many checks, how many
-- succeeded, and a sparse histogram of their latencies (bins and counts).
-- One row per bucket, whatever the spread of latencies: a year is 8,760
-- hourly rows or 365 daily ones per monitor. Written by the statement that
-- stores the results; no column of the key changes there, so its updates
-- are HOT.
CREATE TABLE check_rollups_minute (
    monitor_id bigint      NOT NULL,
    bucket     timestamptz NOT NULL,
    checks     integer     NOT NULL,
    successes  integer     NOT NULL,
    bins       smallint[]  NOT NULL, -- the latency bins holding checks, ascending
    counts     integer[]   NOT NULL, -- checks per bin
    CONSTRAINT check_rollups_minute_pkey PRIMARY KEY (monitor_id, bucket),
    CONSTRAINT check_rollups_minute_monitor_id_fkey FOREIGN KEY (monitor_id) REFERENCES monitors (id) ON DELETE CASCADE
) PARTITION BY RANGE (bucket);

CREATE TABLE check_rollups_hour (
    monitor_id bigint      NOT NULL,
    bucket     timestamptz NOT NULL,
    checks     integer     NOT NULL,
    successes  integer     NOT NULL,
    bins       smallint[]  NOT NULL, -- the latency bins holding checks, ascending
    counts     integer[]   NOT NULL, -- checks per bin
    CONSTRAINT check_rollups_hour_pkey PRIMARY KEY (monitor_id, bucket),
    CONSTRAINT check_rollups_hour_monitor_id_fkey FOREIGN KEY (monitor_id) REFERENCES monitors (id) ON DELETE CASCADE
) PARTITION BY RANGE (bucket);

CREATE TABLE check_rollups_day (
    monitor_id bigint      NOT NULL,
    bucket     timestamptz NOT NULL,
    checks     integer     NOT NULL,
    successes  integer     NOT NULL,
    bins       smallint[]  NOT NULL,
    counts     integer[]   NOT NULL,
    CONSTRAINT check_rollups_day_pkey PRIMARY KEY (monitor_id, bucket),
    CONSTRAINT check_rollups_day_monitor_id_fkey FOREIGN KEY (monitor_id) REFERENCES monitors (id) ON DELETE CASCADE
) PARTITION BY RANGE (bucket);

DO $$
DECLARE
    bound timestamptz := date_bin('1 day', now(), timestamptz 'epoch') + interval '24 hours';
    oldest timestamptz;
    newest timestamptz;
BEGIN
    SELECT min(checked_at), max(checked_at) INTO oldest, newest FROM check_results_legacy;
    IF oldest IS NULL THEN
        -- Nothing to keep (a new database): daily partitions from today.
        DROP TABLE check_results_legacy;
        PERFORM check_results_ensure_partitions(now() - interval '24 hours', now() + interval '8 days');
        RETURN;
    END IF;
    bound := greatest(bound, date_bin('1 day', newest, timestamptz 'epoch') + interval '24 hours');
    -- One scan of the table to check its bounds; its indexes are adopted.
    EXECUTE format('ALTER TABLE check_results ATTACH PARTITION check_results_legacy FOR VALUES FROM (MINVALUE) TO (%L)', bound);
    PERFORM check_results_ensure_partitions(oldest, bound + interval '8 days');
    INSERT INTO check_rollups_minute (monitor_id, bucket, checks, successes, bins, counts)
        SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
        FROM (SELECT monitor_id, date_bin('1 minute', checked_at, timestamptz 'epoch') AS bucket,
                     check_latency_bin(duration_ms) AS bin, count(*) AS n, count(*) FILTER (WHERE ok) AS ok
              FROM check_results_legacy GROUP BY 1, 2, 3) g
        GROUP BY 1, 2;
    INSERT INTO check_rollups_hour (monitor_id, bucket, checks, successes, bins, counts)
        SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
        FROM (SELECT monitor_id, date_bin('1 hour', checked_at, timestamptz 'epoch') AS bucket,
                     check_latency_bin(duration_ms) AS bin, count(*) AS n, count(*) FILTER (WHERE ok) AS ok
              FROM check_results_legacy GROUP BY 1, 2, 3) g
        GROUP BY 1, 2;
    INSERT INTO check_rollups_day (monitor_id, bucket, checks, successes, bins, counts)
        SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
        FROM (SELECT monitor_id, date_bin('1 day', checked_at, timestamptz 'epoch') AS bucket,
                     check_latency_bin(duration_ms) AS bin, count(*) AS n, count(*) FILTER (WHERE ok) AS ok
              FROM check_results_legacy GROUP BY 1, 2, 3) g
        GROUP BY 1, 2;
END $$;

-- Results of a day without a partition (the partition job stopped for more
-- than PartitionsAhead, or rows written straight into the table) land here
-- rather than fail; creating that day's partition moves them. Because of it
-- check_results' partitions are detached without CONCURRENTLY (PostgreSQL
-- refuses it with a default partition), under a short lock_timeout.
CREATE TABLE check_results_default PARTITION OF check_results DEFAULT;
