-- 0001: call detail records.
--
-- The DDL sticks to types both SQLite and PostgreSQL understand. Times are
-- TEXT in the fixed-width RFC 3339 UTC form described in the package
-- documentation. The one dialect-specific line is cdr.id: in SQLite exactly
-- "INTEGER PRIMARY KEY" makes the column an alias of the rowid and so
-- auto-assigned; a PostgreSQL port spells it
-- "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" and reads new ids with
-- "RETURNING id".

CREATE TABLE cdr (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT    NOT NULL, -- Call-ID of the incoming leg
    session_id  TEXT    NOT NULL, -- RFC 7989 Session-ID
    from_number TEXT    NOT NULL,
    to_number   TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    answered_at TEXT,             -- NULL when the call was never answered
    ended_at    TEXT    NOT NULL,
    duration_ms BIGINT  NOT NULL, -- talk time, denormalised for reporting queries
    final_code  INTEGER NOT NULL,
    hangup_by   TEXT    NOT NULL, -- no CHECK: a new party must not make inserts fail
    reason      TEXT    NOT NULL
);

CREATE INDEX cdr_call_id_idx    ON cdr (call_id);
CREATE INDEX cdr_session_id_idx ON cdr (session_id);
CREATE INDEX cdr_started_at_idx ON cdr (started_at);

CREATE TABLE cdr_leg (
    cdr_id    BIGINT  NOT NULL REFERENCES cdr (id) ON DELETE CASCADE,
    leg_index INTEGER NOT NULL,
    call_id   TEXT    NOT NULL,
    peer      TEXT    NOT NULL,
    PRIMARY KEY (cdr_id, leg_index)
);

-- Operators often hold the Call-ID of an outgoing leg, not the incoming one.
CREATE INDEX cdr_leg_call_id_idx ON cdr_leg (call_id);
