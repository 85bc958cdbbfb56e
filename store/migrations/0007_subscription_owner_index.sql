-- 0007: a subscriber's active subscriptions are counted on every create
-- (the quota). With (owner_number, status) only, SQLite preferred
-- (status, expires_at) for "status = ? AND expires_at > ?" and visited every
-- active subscription of every subscriber (measured: 82 % of the create's
-- CPU at 5,000 subscriptions); with expires_at in the owner index the count
-- is a range scan of that subscriber's entries, read from the index alone.

DROP INDEX subscription_owner;
CREATE INDEX subscription_owner ON subscription (owner_number, status, expires_at);
