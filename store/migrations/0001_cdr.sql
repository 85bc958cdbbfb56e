-- 0001: call detail records.
--
-- The DDL sticks to types both SQLite and PostgreSQL understand. Times are
-- TEXT in the fixed-width RFC 3339 UTC form described in the package
-- documentation. The one dialect-specific line is cdr.id: in SQLite exactly
-- "INTEGER PRIMARY KEY" makes the column an alias of the rowid and so
-- auto-assigned; a PostgreSQL port spells it
-- "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY".
--
-- One row per call, legs included. The gateway writes about as many CDRs
-- per second as it handles calls, so what one costs to insert matters more
-- than anything a report could gain from normalising, and the cost is
-- dominated by the index pages an insert dirties: every index keyed by a
-- random value (a Call-ID, a Session-ID) costs about one page written to
-- the WAL, and later to the database file, per row once the index is larger
-- than a batch. The first schema kept legs in a cdr_leg table with its own
-- index on the leg Call-ID: three rows and four random index entries per
-- call. This one has one row and two random index entries (call_id,
-- session_id); its time index is appended to, see below.

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
    reason      TEXT    NOT NULL,
    -- The call's legs as a JSON array in leg order, for example
    -- [{"index":1,"call_id":"a84b4c76e66710","peer":"sip:+15550001@10.0.0.1"}].
    -- Always written by the store in one compact form (keys in this order, no
    -- spaces, only '"', '\' and control characters escaped), which lets
    -- ListCDRs find an outgoing leg's Call-ID with a plain substring test
    -- before it parses anything. It is TEXT rather than a JSON type so that
    -- the DDL stays portable; a PostgreSQL port can declare it jsonb and add
    -- a GIN index if lookups by outgoing Call-ID need to be fast there.
    legs        TEXT    NOT NULL
);

-- Lookups by the incoming Call-ID and by Session-ID are indexed. There is
-- deliberately no index on the outgoing legs' Call-IDs: it would cost as much
-- on every insert as either of these, for a lookup an operator runs by hand.
-- ListCDRs finds those by scanning legs instead; see CDRFilter.CallID.
CREATE INDEX cdr_call_id_idx    ON cdr (call_id);
CREATE INDEX cdr_session_id_idx ON cdr (session_id);

-- Time is indexed by ended_at, not started_at, although lists are newest
-- first by started_at. A record is written when its call ends, so ended_at
-- grows with every insert and its index is only ever appended to. started_at
-- arrives up to a call's length out of order, which spreads inserts over the
-- index's whole recent end and made it cost as much as a random-key index.
-- A call ends after it starts, so the newest calls by started_at are among
-- those that ended after the oldest of them started: ListCDRs reads a short
-- range of ended_at, widening it until that holds. Reports by time range can
-- use the same bound (started_at >= X implies ended_at >= X).
CREATE INDEX cdr_ended_at_idx ON cdr (ended_at);
-- The exception: a wall clock stepped back during a call can leave ended_at
-- before started_at. This partial index holds only such rows, normally none,
-- so ListCDRs can add them to every range at no cost to inserts.
CREATE INDEX cdr_clock_skew_idx ON cdr (started_at) WHERE ended_at < started_at;
