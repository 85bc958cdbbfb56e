-- 0004: the CloudEvents outbox (DESIGN §5). An event is written here in the
-- same transaction as the state change that causes it, and deleted once its
-- sink has taken it; events that ran out of retries stay as dead letters
-- for operators.
--
-- seq orders the events of one sink: the deliverer sends a sink's events in
-- seq order, one at a time.

CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE, -- the CloudEvent id
    subscription_id TEXT    NOT NULL,
    sink            TEXT    NOT NULL,        -- URL the event is POSTed to
    sink_token      TEXT    NOT NULL,        -- bearer token for the sink ("" = none); never logged
    event_type      TEXT    NOT NULL,
    body            BLOB    NOT NULL,        -- the CloudEvent, structured JSON
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         TEXT    NOT NULL,        -- not before this
    last_error      TEXT    NOT NULL DEFAULT '',
    dead            INTEGER NOT NULL DEFAULT 0 -- 1: retries exhausted or refused; kept for operators
);

CREATE INDEX outbox_due ON outbox (dead, next_at);
CREATE INDEX outbox_sink ON outbox (sink, seq);
