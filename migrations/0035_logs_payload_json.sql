-- Cheaper `replay rebuild`s of the activity log, for the same API.
--
-- The payload is written once per event and only ever read whole (the API turns it into a JSON
-- object) or by a key or two: stored as `json` (validated text), PostgreSQL no longer builds a
-- binary `jsonb` document per entry, which was about half of what ingesting a `logs` row cost a
-- rebuild. Readers that need jsonb's operators cast (`::jsonb`); the `logs_hook` expression
-- index is re-created by the type change with json's `->>`.
--
-- The list indexes ascend by time, as rows arrive: a rebuild builds them after loading the log
-- in position order, and sorting input already in index order is cheaper (about 40% less time
-- per index than descending). `ORDER BY created_at DESC, id DESC` reads them backwards, as
-- fast. Dropped before the type change, which would otherwise rebuild them too.
DROP INDEX logs_created_at;
DROP INDEX logs_application;
DROP INDEX logs_key;
ALTER TABLE logs ALTER COLUMN payload TYPE json USING payload::json;
CREATE INDEX logs_created_at ON logs (created_at, id);
CREATE INDEX logs_application ON logs (application_id, created_at) WHERE application_id IS NOT NULL;
CREATE INDEX logs_key ON logs (key, created_at);
