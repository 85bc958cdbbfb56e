-- 0008: a sink's first live event is found with one probe of this index
-- (DueEvents), instead of grouping the whole outbox by sink on every call.

DROP INDEX outbox_sink;
CREATE INDEX outbox_sink_live ON outbox (sink, dead, seq);
