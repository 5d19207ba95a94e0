-- The log: the only source of truth. Every other table but the key and secret stores below is a
-- projection that `replay rebuild` can drop and refold.

CREATE TABLE events (
    position      bigint PRIMARY KEY,
    stream_id     text        NOT NULL,
    stream_type   text        NOT NULL,
    sequence      integer     NOT NULL CHECK (sequence > 0),
    event_type    text        NOT NULL,
    event_version integer     NOT NULL CHECK (event_version > 0),
    -- The non-personal part of the payload, in the clear.
    payload       jsonb       NOT NULL,
    -- The personal part (fields named by the event type, plus IP and user agent), sealed under
    -- the data key of `subject_id`. NULL when the event carries nothing personal.
    personal      bytea,
    subject_id    text,
    actor_kind    text        NOT NULL,
    actor_id      text,
    -- IP and user agent of events with no data subject (e.g. an app's own changes).
    ip            text,
    user_agent    text,
    request_id    text,
    occurred_at   timestamptz NOT NULL,
    -- A stream is named by its aggregate type and id: a user and a role may share an id.
    CONSTRAINT events_stream_sequence UNIQUE (stream_type, stream_id, sequence)
);

CREATE INDEX events_subject ON events (subject_id, position) WHERE subject_id IS NOT NULL;
-- Positions grow with time, so a BRIN index answers time-range scans at almost no append cost.
CREATE INDEX events_occurred_at ON events USING brin (occurred_at);

-- Appends are serialised on this single row: an appender locks it, takes the next positions and
-- holds it until commit, so positions are gapless and become visible in order.
CREATE TABLE event_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL
);
INSERT INTO event_head VALUES (true, 0);

-- A stored event is never rewritten.
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Per-person data keys, wrapped under the key-encryption key. Erasure sets `wrapped_key` to NULL.
CREATE TABLE data_keys (
    subject_id   text PRIMARY KEY,
    wrapped_key  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- Secrets that must be shown again later (app secrets) or used (signing keys), sealed under the
-- key-encryption key. Events refer to entries by `ref`; deleting the secret deletes the entry.
CREATE TABLE vault (
    ref    text PRIMARY KEY,
    sealed bytea NOT NULL
);

-- How far each projection has folded the log.
CREATE TABLE projection_checkpoints (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
