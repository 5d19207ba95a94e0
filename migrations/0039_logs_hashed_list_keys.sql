-- Cheaper `replay rebuild`s of the activity log, for the same queries.
--
-- The key and application list indexes led by the text itself made the sort that builds them
-- at the end of a rebuild slow: those columns repeat (a few dozen keys, a few applications),
-- so nearly every comparison tied on the text and went on to `created_at`, which sits behind a
-- variable-length column in the index tuple and is found by walking it. Led by `hashtext` of
-- the text, an integer at a fixed offset, the same sort takes half the time (with `psql` on
-- 1M entries: 700 to 360 ms each). Queries match the hash through the index and the text by
-- a filter, so a collision costs a few skipped rows, never a wrong one (`logs::filtered`).
--
-- The time index no longer carries `id`: `ORDER BY created_at DESC, id DESC` reads it
-- backwards and orders the rare entries of one millisecond by id (an incremental sort), and
-- the index of one integer builds in two thirds of the time.
DROP INDEX logs_key;
DROP INDEX logs_application;
DROP INDEX logs_created_at;
CREATE INDEX logs_key ON logs (hashtext(key), created_at);
CREATE INDEX logs_application ON logs (hashtext(application_id), created_at)
    WHERE application_id IS NOT NULL;
CREATE INDEX logs_created_at ON logs (created_at);
