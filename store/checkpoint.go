package store

import (
	"context"
	"fmt"
	"time"
)

// Background checkpoints.
//
// SQLite copies the write-ahead log into the database file (a checkpoint)
// when a commit leaves the log longer than wal_autocheckpoint pages: inside
// that commit, on the writer connection, with an fsync of the log and one
// of the database file. Every caller queued behind the writer waits for it.
// Measured with the relay at 2,000 events/s (7,500 log pages/s), the writer
// checkpointed about once a second and each time held the writer 60-80 ms:
// that was the relay's p99 latency.
//
// A checkpoint may run from a reader connection instead (PASSIVE: it copies
// what no reader still needs and never blocks the writer), and its fsyncs
// then hold up nobody. But that alone does not keep the log short: SQLite
// starts the log over only when a write transaction begins and finds every
// page of the log copied, and under a steady stream of commits there is
// always a newer page. So RunCheckpoints, once the log is long, holds the
// writer connection (no commit can happen) for a second, short PASSIVE pass
// that copies the few pages committed since the first; the next write
// transaction then finds the log fully copied and starts it over. The
// writer waits only for that short pass.
//
// The gateway (app.App.Start) and `callpath relay` run these on their
// stores.

// Checkpoint runs a PASSIVE checkpoint on a reader connection: it returns
// the pages in the log and how many of them are now in the database file.
func (db *DB) Checkpoint(ctx context.Context) (logPages, copied int, err error) {
	var busy int
	if err := db.read.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &copied); err != nil {
		return 0, 0, fmt.Errorf("checkpoint: %w", err)
	}
	return logPages, copied, nil
}

// DefaultRestartPages: the log is started over once it is half as long as
// the writer's own checkpoint threshold, which it then never reaches.
const DefaultRestartPages = walCheckpointPages / 2

// RunCheckpoints checkpoints from a reader every interval until ctx ends,
// and starts the log over once it holds restartPages pages (0:
// DefaultRestartPages). onError gets failures; the writer's own checkpoint
// remains the fallback.
func (db *DB) RunCheckpoints(ctx context.Context, interval time.Duration, restartPages int, onError func(error)) {
	if restartPages <= 0 {
		restartPages = DefaultRestartPages
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		logPages, _, err := db.Checkpoint(ctx)
		if err == nil && logPages >= restartPages {
			err = db.restartLog(ctx)
		}
		if err != nil && ctx.Err() == nil {
			onError(err)
		}
	}
}

// restartLog holds the writer connection while a reader copies the rest of
// the log, so that the next write transaction starts the log over.
func (db *DB) restartLog(ctx context.Context) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint: hold the writer: %w", err)
	}
	defer conn.Close() // back to the pool: writers go on
	// When a reader still needs older pages, not all is copied and the
	// log goes on growing; a later round tries again.
	_, _, err = db.Checkpoint(ctx)
	return err
}
