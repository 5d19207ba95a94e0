-- Read models of the OpenID Connect provider: interactions, sessions, grants and token state.

CREATE TABLE interactions (
    id            text    PRIMARY KEY,
    client_id     text    NOT NULL,
    event         text    NOT NULL,
    request       jsonb   NOT NULL,
    verifications jsonb   NOT NULL,
    user_id       text,
    submitted     boolean NOT NULL,
    completed     boolean NOT NULL,
    grant_id      text,
    expires_at    bigint  NOT NULL,
    created_at    bigint  NOT NULL,
    updated_at    bigint  NOT NULL
);
CREATE INDEX interactions_user ON interactions (user_id) WHERE user_id IS NOT NULL;

-- `id` is the keyed hash of the session cookie, never the cookie itself.
CREATE TABLE sessions (
    id         text   PRIMARY KEY,
    user_id    text   NOT NULL,
    auth_time  bigint NOT NULL,
    clients    jsonb  NOT NULL,
    expires_at bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    ended_at   bigint,
    end_reason text
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);

CREATE TABLE grants (
    id            text   PRIMARY KEY,
    client_id     text   NOT NULL,
    user_id       text   NOT NULL,
    session_id    text   NOT NULL,
    scopes        jsonb  NOT NULL,
    resources     jsonb  NOT NULL,
    auth_time     bigint NOT NULL,
    nonce         text,
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL,
    revoked_at    bigint,
    revoke_reason text
);
CREATE INDEX grants_user ON grants (user_id, created_at DESC);
CREATE INDEX grants_session ON grants (session_id);

-- Codes, opaque access tokens and refresh tokens, by keyed hash.
CREATE TABLE oidc_tokens (
    hash        text    PRIMARY KEY,
    kind        text    NOT NULL CHECK (kind IN ('code', 'access', 'refresh')),
    grant_id    text    NOT NULL,
    client_id   text    NOT NULL,
    user_id     text    NOT NULL,
    scopes      jsonb   NOT NULL,
    resource    text,
    created_at  bigint  NOT NULL,
    expires_at  bigint  NOT NULL,
    consumed_at bigint,
    revoked     boolean NOT NULL
);
CREATE INDEX oidc_tokens_grant ON oidc_tokens (grant_id);
