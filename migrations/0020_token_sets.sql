-- Social identities' stored provider tokens (the token vault, `enableTokenStorage`): which user
-- holds a token set from which target, and what is known of it without opening it. The tokens
-- themselves are sealed in `vault` under `vault_ref`. A fold of the `token_set` streams.

CREATE TABLE token_sets (
    stream_id         text    PRIMARY KEY,
    user_id           text    NOT NULL,
    target            text    NOT NULL,
    connector_id      text    NOT NULL,
    vault_ref         text    NOT NULL,
    token_type        text    NOT NULL,
    scope             text,
    expires_at        bigint,
    has_refresh_token boolean NOT NULL,
    created_at        bigint  NOT NULL,
    updated_at        bigint  NOT NULL
);

CREATE INDEX token_sets__user_id ON token_sets (user_id);
CREATE INDEX token_sets__target ON token_sets (target);
