-- 0005: CAMARA webrtc-events subscriptions (DESIGN §5). A subscription is
-- owned by the subscriber's phone number (from the access token) and keeps
-- its row after it ends (status EXPIRED or DELETED, with the termination
-- reason) until the retention sweep purges it.
--
-- Portable DDL as in 0001: TEXT times in the fixed-width UTC layout, ''
-- for "none" where a column is optional, no SQLite-only types.

CREATE TABLE subscription (
    id                    TEXT    NOT NULL PRIMARY KEY,
    owner_number          TEXT    NOT NULL,           -- E.164 from the token's phone_number
    owner_subject         TEXT    NOT NULL,           -- token subject that created it
    client_id             TEXT    NOT NULL,           -- token client (azp/client_id), '' if none
    event_types           TEXT    NOT NULL,           -- space-separated CloudEvent types
    sink                  TEXT    NOT NULL,           -- https URL events are POSTed to
    sink_token            TEXT    NOT NULL,           -- bearer token for the sink ('' = none); never logged
    sink_token_expires_at TEXT    NOT NULL,           -- '' = no sink token
    registration_id       TEXT    NOT NULL,           -- config.subscriptionDetail
    device_id             TEXT    NOT NULL,
    session_id            TEXT    NOT NULL,
    requested_expire_time TEXT    NOT NULL,           -- config.subscriptionExpireTime as asked ('' = none)
    max_events            INTEGER NOT NULL,           -- config.subscriptionMaxEvents (0 = none)
    initial_event         INTEGER NOT NULL,           -- config.initialEvent: -1 absent, 0 false, 1 true
    events_sent           INTEGER NOT NULL DEFAULT 0, -- events published to it, toward max_events
    status                TEXT    NOT NULL,           -- ACTIVATION_REQUESTED, ACTIVE, INACTIVE, EXPIRED, DELETED
    starts_at             TEXT    NOT NULL,
    expires_at            TEXT    NOT NULL,           -- granted expiry
    ended_at              TEXT    NOT NULL DEFAULT '',
    termination_reason    TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX subscription_owner ON subscription (owner_number, status);
CREATE INDEX subscription_status_expires ON subscription (status, expires_at);
