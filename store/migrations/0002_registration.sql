-- 0002: virtual SIP registrations (DESIGN §3), one per phone number.
--
-- Portable DDL as in 0001. The call path never reads this table: it works
-- from the in-memory copy the registry loads at start and keeps up to date,
-- so the table is written at provisioning pace and read at start-up
-- (expires_at index) and by the expiry sweep.

CREATE TABLE registration (
    phone_number TEXT    NOT NULL PRIMARY KEY, -- E.164 with "+"
    route_type   INTEGER NOT NULL,             -- SipBreakout RouteType value
    sip_uri      TEXT    NOT NULL,             -- the TAS, normalised
    mo_prefix    TEXT    NOT NULL,
    mt_prefix    TEXT    NOT NULL,
    owner        TEXT    NOT NULL,             -- OAuth2 subject that created it
    updated_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);

CREATE INDEX registration_expires_at ON registration (expires_at);
