-- Read models of the `users` projection. Constraint and index names are Logto's, so the error
-- mapping reads like Logto's (`users__primary_email` -> `user.email_already_in_use`).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id                 text    PRIMARY KEY,
    username           text    CHECK (length(username) <= 128),
    primary_email      text    CHECK (length(primary_email) <= 128),
    primary_phone      text    CHECK (length(primary_phone) <= 128),
    name               text    CHECK (length(name) <= 128),
    avatar             text    CHECK (length(avatar) <= 2048),
    custom_data        jsonb   NOT NULL,
    identities         jsonb   NOT NULL,
    profile            jsonb   NOT NULL,
    application_id     text,
    is_suspended       boolean NOT NULL,
    password_digest    text,
    password_algorithm text,
    last_sign_in_at    bigint,
    created_at         bigint  NOT NULL,
    updated_at         bigint  NOT NULL
);
CREATE UNIQUE INDEX users__username ON users (username);
-- Emails are unique whatever their case, as in Logto.
CREATE UNIQUE INDEX users__primary_email ON users (lower(primary_email));
CREATE UNIQUE INDEX users__primary_phone ON users (primary_phone);
CREATE INDEX users_created_at ON users (created_at DESC, id DESC);
-- Trigram indexes serve Logto's `%value%` searches over the searchable columns.
CREATE INDEX users_id_trgm ON users USING gin (id gin_trgm_ops);
CREATE INDEX users_username_trgm ON users USING gin (username gin_trgm_ops);
CREATE INDEX users_primary_email_trgm ON users USING gin (primary_email gin_trgm_ops);
CREATE INDEX users_primary_phone_trgm ON users USING gin (primary_phone gin_trgm_ops);
CREATE INDEX users_name_trgm ON users USING gin (name gin_trgm_ops);

CREATE TABLE users_roles (
    user_id    text   NOT NULL,
    role_id    text   NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX users_roles_role ON users_roles (role_id, created_at DESC);

-- One upstream account belongs to one user.
CREATE TABLE users_identities (
    user_id     text NOT NULL,
    target      text NOT NULL,
    identity_id text NOT NULL,
    CONSTRAINT users_identities__target_identity_id UNIQUE (target, identity_id),
    PRIMARY KEY (user_id, target)
);

-- Personal access tokens: looked up by keyed hash; values sealed in `vault`.
CREATE TABLE personal_access_tokens (
    user_id     text   NOT NULL,
    name        text   NOT NULL CHECK (length(name) <= 256),
    lookup_hash text   NOT NULL,
    vault_ref   text   NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint,
    CONSTRAINT personal_access_tokens_pkey PRIMARY KEY (user_id, name)
);
CREATE INDEX personal_access_tokens_lookup ON personal_access_tokens (lookup_hash);
