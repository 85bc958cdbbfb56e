-- 0010: in r2.2 a subscription names the device registration it serves;
-- when that registration ends (expiry, the network, DELETE, a newer one of
-- the same device) its subscriptions end with it. The lookup runs in the
-- registration's own transaction, so it must be an index probe, not a scan
-- of every subscription.

CREATE INDEX subscription_registration ON subscription (registration_id, status) WHERE registration_id != '';
