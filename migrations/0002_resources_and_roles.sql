-- Read models of the `resources` and `roles` projections.

CREATE TABLE resources (
    id               text    PRIMARY KEY,
    name             text    NOT NULL,
    indicator        text    NOT NULL,
    access_token_ttl bigint  NOT NULL,
    is_default       boolean NOT NULL,
    created_at       bigint  NOT NULL,
    CONSTRAINT resources__indicator UNIQUE (indicator)
);

CREATE TABLE scopes (
    id          text   PRIMARY KEY,
    resource_id text   NOT NULL,
    name        text   NOT NULL,
    description text,
    created_at  bigint NOT NULL,
    CONSTRAINT scopes__resource_id_name UNIQUE (resource_id, name)
);

CREATE TABLE roles (
    id          text    PRIMARY KEY,
    name        text    NOT NULL CHECK (length(name) <= 128),
    description text    NOT NULL CHECK (length(description) <= 128),
    type        text    NOT NULL CHECK (type IN ('User', 'MachineToMachine')),
    is_default  boolean NOT NULL,
    created_at  bigint  NOT NULL,
    CONSTRAINT roles__name UNIQUE (name)
);
CREATE INDEX roles_created_at ON roles (created_at DESC, id);

CREATE TABLE roles_scopes (
    role_id    text   NOT NULL,
    scope_id   text   NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (role_id, scope_id)
);
CREATE INDEX roles_scopes_scope ON roles_scopes (scope_id);
