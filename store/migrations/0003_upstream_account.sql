-- 0003: SIP accounts the telco issued per number, which callpath registers
-- at the telco's registrar (upstream registration client). Read at start-up
-- to register them again, written when an operator adds or removes one.
--
-- The password is needed in clear to answer digest challenges; protect the
-- database file like any credential store (the gateway never logs it).

CREATE TABLE upstream_account (
    phone_number TEXT NOT NULL PRIMARY KEY, -- E.164 with "+"
    username     TEXT NOT NULL,             -- digest user name ("" = the number)
    password     TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
