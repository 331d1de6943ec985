-- For sqlc only, read before migrations/ (sqlc.yaml); the database never
-- runs it. 0002_partition_results.sql copies the position of check_results'
-- identity sequence (CREATE TABLE ... AS SELECT ... FROM
-- check_results_id_seq), and sqlc, which keeps no sequences, must know that
-- relation's columns to read the migration. These are PostgreSQL's for a
-- sequence; monitorsdb/schema_test.go checks them against the database.
CREATE TABLE check_results_id_seq (
    last_value bigint  NOT NULL,
    log_cnt    bigint  NOT NULL,
    is_called  boolean NOT NULL
);
