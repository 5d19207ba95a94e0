-- Read models of the `applications` projection.

CREATE TABLE applications (
    id                               text    PRIMARY KEY,
    name                             text    NOT NULL CHECK (length(name) <= 256),
    description                      text,
    type                             text    NOT NULL,
    oidc_client_metadata             jsonb   NOT NULL,
    custom_client_metadata           jsonb   NOT NULL,
    custom_data                      jsonb   NOT NULL,
    is_third_party                   boolean NOT NULL,
    app_level_access_control_enabled boolean NOT NULL,
    created_at                       bigint  NOT NULL
);
CREATE INDEX applications_created_at ON applications (created_at DESC, id);

-- Secrets are looked up by keyed hash; their values live sealed in `vault`.
CREATE TABLE application_secrets (
    application_id text   NOT NULL,
    name           text   NOT NULL CHECK (length(name) <= 256),
    lookup_hash    text   NOT NULL,
    vault_ref      text   NOT NULL,
    created_at     bigint NOT NULL,
    expires_at     bigint,
    CONSTRAINT application_secrets_pkey PRIMARY KEY (application_id, name)
);
CREATE INDEX application_secrets_lookup ON application_secrets (lookup_hash);

CREATE TABLE applications_roles (
    application_id text   NOT NULL,
    role_id        text   NOT NULL,
    created_at     bigint NOT NULL,
    PRIMARY KEY (application_id, role_id)
);
CREATE INDEX applications_roles_role ON applications_roles (role_id);
