-- The tables of opsready-flags' PostgresStore. Names are unqualified: the
-- store runs its migrations with `search_path` set to its own schema
-- (`opsready_flags` unless chosen otherwise), so that several stores can
-- share a database.
--
-- Never edit this file once released: sqlx records its checksum, and every
-- instance refuses to start when a recorded migration changed. Add a new one.

-- One row per key ever written: its latest version, counting deletes, and
-- its live definition.
CREATE TABLE definitions (
    key        text        PRIMARY KEY,
    -- 0 only inside the transaction that writes a key for the first time:
    -- the row is reserved first, so that two creators of one key queue on
    -- its lock instead of racing.
    version    bigint      NOT NULL CHECK (version >= 0),
    -- NULL once the flag is deleted; the key keeps its version, so a flag
    -- created again continues counting.
    definition jsonb,
    updated_at timestamptz NOT NULL
);

COMMENT ON TABLE definitions IS
    'opsready-flags: the latest version of each flag and its live definition (NULL when deleted). Change it only through the store, which audits and notifies.';

-- Every change ever applied, one row per version of a key.
CREATE TABLE audit_log (
    key      text        NOT NULL,
    version  bigint      NOT NULL CHECK (version >= 1),
    action   text        NOT NULL,
    actor    text        NOT NULL,
    reason   text        NOT NULL,
    at       timestamptz NOT NULL,
    before   jsonb,
    after    jsonb,
    restores bigint,
    PRIMARY KEY (key, version)
);

COMMENT ON TABLE audit_log IS
    'opsready-flags: every change of every flag, append-only.';

-- Append-only: an audit log that can be rewritten proves nothing. Pruning
-- it is a deliberate act of an owner, who must drop the trigger first.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the flag audit log is append-only: % refused', TG_OP;
END;
$$;

CREATE TRIGGER audit_log_is_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

CREATE TRIGGER audit_log_is_never_truncated
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
