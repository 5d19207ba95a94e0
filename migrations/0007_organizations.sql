-- Read models of the `organizations` projection. Constraint names are Logto's, so the error
-- mapping reads like Logto's (`organization_roles__name` -> `entity.unique_integrity_violation`).
-- No foreign keys: replay truncates and refills each table on its own, and a deleted user or
-- organization role is removed from these tables by the fold itself.

CREATE TABLE organizations (
    id              text    PRIMARY KEY,
    name            text    NOT NULL CHECK (length(name) <= 128),
    description     text    CHECK (length(description) <= 256),
    custom_data     jsonb   NOT NULL,
    is_mfa_required boolean NOT NULL,
    color           jsonb   NOT NULL,
    branding        jsonb   NOT NULL,
    custom_css      text,
    created_at      bigint  NOT NULL
);
CREATE INDEX organizations_created_at ON organizations (created_at DESC, id DESC);

CREATE TABLE organization_roles (
    id          text   PRIMARY KEY,
    name        text   NOT NULL CHECK (length(name) <= 128),
    description text   CHECK (length(description) <= 256),
    type        text   NOT NULL CHECK (type IN ('User', 'MachineToMachine')),
    created_at  bigint NOT NULL,
    CONSTRAINT organization_roles__name UNIQUE (name)
);

CREATE TABLE organization_user_relations (
    organization_id text   NOT NULL,
    user_id         text   NOT NULL,
    created_at      bigint NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_user_relations_user ON organization_user_relations (user_id);

CREATE TABLE organization_role_user_relations (
    organization_id      text   NOT NULL,
    organization_role_id text   NOT NULL,
    user_id              text   NOT NULL,
    created_at           bigint NOT NULL,
    PRIMARY KEY (organization_id, organization_role_id, user_id)
);
CREATE INDEX organization_role_user_relations_user ON organization_role_user_relations (user_id);
CREATE INDEX organization_role_user_relations_role
    ON organization_role_user_relations (organization_role_id);

CREATE TABLE organization_jit_roles (
    organization_id      text   NOT NULL,
    organization_role_id text   NOT NULL,
    created_at           bigint NOT NULL,
    PRIMARY KEY (organization_id, organization_role_id)
);
CREATE INDEX organization_jit_roles_role ON organization_jit_roles (organization_role_id);
