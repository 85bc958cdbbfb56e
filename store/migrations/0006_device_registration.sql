-- 0006: WebRTC device registrations (CAMARA webrtc-registration): a device
-- registered for a phone number until expires_at. The number's registration
-- at the telco's registrar, if its range needs one, is the upstream
-- client's (0003); upstream says whether this one asked for it.

CREATE TABLE device_registration (
    id           TEXT    NOT NULL PRIMARY KEY, -- registrationId
    device_id    TEXT    NOT NULL,             -- UUID chosen by the device
    phone_number TEXT    NOT NULL,             -- E.164, from the token
    subject      TEXT    NOT NULL,             -- OAuth2 subject that created it
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    upstream     INTEGER NOT NULL DEFAULT 0    -- 1: the number is registered upstream for it
);

CREATE INDEX device_registration_number ON device_registration (phone_number);
CREATE INDEX device_registration_expires ON device_registration (expires_at);
