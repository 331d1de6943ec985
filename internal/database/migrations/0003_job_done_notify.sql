-- A finalized job whose metadata asks for it ({"beacon_notify": "done"},
-- jobs.Awaited) announces its id on beacon_job_done at commit, so that an API
-- replica waiting on it (jobs.Waiter) wakes at once instead of polling. The
-- WHEN clause keeps every other job (scheduled checks, maintenance) free of it.
CREATE FUNCTION beacon_notify_job_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('beacon_job_done', NEW.id::text);
	RETURN NULL;
END
$$;

CREATE TRIGGER beacon_job_done AFTER UPDATE OF state ON river_job
FOR EACH ROW
WHEN (NEW.state IN ('completed', 'cancelled', 'discarded')
	AND OLD.state IS DISTINCT FROM NEW.state
	AND NEW.metadata @> '{"beacon_notify": "done"}')
EXECUTE FUNCTION beacon_notify_job_done();
