-- The activity log's payload is written once per event and only ever read whole (the API turns
-- it into a JSON object) or by a key or two: stored as `json` (validated text), PostgreSQL no
-- longer builds a binary `jsonb` document per entry, which was about half of what ingesting a
-- `logs` row cost a `replay rebuild`. Readers that need jsonb's operators cast (`::jsonb`); the
-- `logs_hook` expression index is re-created by the type change with json's `->>`.
ALTER TABLE logs ALTER COLUMN payload TYPE json USING payload::json;
