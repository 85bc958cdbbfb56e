-- 0009: the WebSocket notification relay (package relay). A binding is one
-- app instance (an owner, from its token, and the device id it gave) with a
-- sink URL of its own; the CloudEvents POSTed to that sink wait in
-- relay_event until the app acknowledges them, so none is lost while the
-- app is offline or the relay restarts.

CREATE TABLE relay_binding (
    id                 TEXT    PRIMARY KEY,      -- random; the last segment of the sink URL
    owner              TEXT    NOT NULL,         -- phone number, or "sub:" + token subject
    device_id          TEXT    NOT NULL,         -- given by the app on connect
    created_at         TEXT    NOT NULL,
    last_seen_at       TEXT    NOT NULL,         -- last connect or disconnect: idle bindings expire
    expired_unreported INTEGER NOT NULL DEFAULT 0, -- events dropped that the app has not been told of
    UNIQUE (owner, device_id)
);

-- Sink credentials: only their SHA-256 is kept. Every hello hands out a new
-- one and earlier ones stay valid until they expire, so a subscription made
-- with any of them keeps working.
CREATE TABLE relay_sink_token (
    hash       BLOB NOT NULL PRIMARY KEY,
    binding_id TEXT NOT NULL REFERENCES relay_binding (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX relay_sink_token_binding ON relay_sink_token (binding_id, expires_at);

-- seq orders a binding's events (it is what the app acknowledges and
-- resumes from); (binding_id, event_id) makes a sender's retry of an event
-- still queued a no-op.
CREATE TABLE relay_event (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    binding_id TEXT NOT NULL REFERENCES relay_binding (id) ON DELETE CASCADE,
    event_id   TEXT NOT NULL,
    body       BLOB NOT NULL,                    -- the CloudEvent, structured JSON
    created_at TEXT NOT NULL,
    UNIQUE (binding_id, event_id)
);

CREATE INDEX relay_event_binding ON relay_event (binding_id, seq);
