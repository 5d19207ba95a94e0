-- Read model of the `logs` projection (`/api/logs`).

CREATE TABLE logs (
    id             text   PRIMARY KEY,
    key            text   NOT NULL,
    payload        jsonb  NOT NULL,
    user_id        text,
    application_id text,
    created_at     bigint NOT NULL
);
CREATE INDEX logs_created_at ON logs (created_at DESC, id DESC);
CREATE INDEX logs_user ON logs (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX logs_application ON logs (application_id, created_at DESC) WHERE application_id IS NOT NULL;
CREATE INDEX logs_key ON logs (key, created_at DESC);
