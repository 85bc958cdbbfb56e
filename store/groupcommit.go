package store

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// Group commit.
//
// Every write goes through the one writer connection, and each Update used
// to be a transaction of its own: BEGIN IMMEDIATE, its statements, COMMIT.
// Under load (64 API clients creating subscriptions), the callers queued
// behind the connection and the BEGIN/COMMIT pairs, each writing the same
// few b-tree pages to the WAL again, set the tail latency. Now the Updates
// that arrive while a transaction runs wait together and go in the next
// one: each in a SAVEPOINT, so a body that fails rolls back only its own
// changes, and one COMMIT for them all.
//
// There is no goroutine of its own: the first caller to find no batch
// running leads one, and when it has its own answer it hands the lead to
// the first caller still waiting (so no caller stays to serve others).

// maxBatch bounds how many Updates share one transaction, which bounds how
// long the first of them waits for its commit.
const maxBatch = 128

// pendingUpdate is one caller's Update waiting for, or in, a batch.
type pendingUpdate struct {
	ctx   context.Context
	fn    func(*Tx) error
	state updateState // guarded by commitQueue.mu
	msg   chan updateMsg
}

type updateState int

const (
	updateWaiting   updateState = iota
	updateAbandoned             // the caller's context ended before its batch began
	updatePromoted              // asked to lead the next batch
	updateRunning               // taken into a batch: an answer will come
)

// updateMsg is either a caller's answer or the lead handed to it.
type updateMsg struct {
	err  error
	lead bool
}

type commitQueue struct {
	mu      sync.Mutex
	waiting []*pendingUpdate
	leading bool // a caller is running batches
}

// Update runs fn in one write transaction: every change it makes, events
// enqueued included, is committed together or not at all. fn may share its
// transaction with other callers' Updates (see group commit above) but
// never sees their failures: its own error rolls back only its changes.
//
// ctx bounds the wait for the writer; once fn has begun it runs to its end
// (an interrupted statement would roll back the shared transaction), so fn
// must not block on anything but the database.
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) error {
	p := &pendingUpdate{ctx: ctx, fn: fn, msg: make(chan updateMsg, 1)}
	q := &db.commits
	q.mu.Lock()
	q.waiting = append(q.waiting, p)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if lead {
		db.leadBatch()
	}
	done := ctx.Done()
	for {
		select {
		case m := <-p.msg:
			if m.lead {
				db.leadBatch()
				continue
			}
			return m.err
		case <-done:
			q.mu.Lock()
			if p.state == updateWaiting {
				p.state = updateAbandoned
				q.mu.Unlock()
				return fmt.Errorf("waiting for the database writer: %w", ctx.Err())
			}
			q.mu.Unlock()
			done = nil // running or promoted: a message is on its way
		}
	}
}

// leadBatch runs the next batch, then hands the lead to the first caller
// still waiting, or gives it up when there is none.
func (db *DB) leadBatch() {
	q := &db.commits
	q.mu.Lock()
	var batch []*pendingUpdate
	n := 0
	for _, p := range q.waiting {
		switch {
		case p.state == updateAbandoned:
			n++ // dropped
		case len(batch) < maxBatch:
			p.state = updateRunning
			batch = append(batch, p)
			n++
		}
		if len(batch) == maxBatch {
			break
		}
	}
	q.waiting = q.waiting[n:]
	q.mu.Unlock()

	db.runBatch(batch)

	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.waiting {
		if p.state == updateWaiting {
			p.state = updatePromoted
			p.msg <- updateMsg{lead: true}
			return
		}
	}
	q.waiting = q.waiting[:0]
	q.leading = false
}

// runBatch runs the batch's bodies in one transaction and answers each
// caller.
func (db *DB) runBatch(batch []*pendingUpdate) {
	errs := make([]error, len(batch))
	var missed []string
	batchErr := db.runBatchTx(batch, errs, &missed)
	for i, p := range batch {
		err := errs[i]
		if batchErr != nil && err == nil {
			err = batchErr
		}
		p.msg <- updateMsg{err: err}
	}
	// Statements first seen in the batch are prepared now that the writer
	// is free; failure costs nothing but speed (the SQL text works too).
	for _, query := range missed {
		_, _ = db.writeStmts.prepared(context.Background(), db.write, query)
	}
}

// runBatchTx fills errs with each body's own error and returns the error
// that failed the whole batch, if any.
func (db *DB) runBatchTx(batch []*pendingUpdate, errs []error, missed *[]string) (err error) {
	if len(batch) == 0 {
		return nil
	}
	// The transaction outlives any one caller's context.
	tx, err := db.beginWrite(context.Background())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	shared := len(batch) > 1
	committed := 0
	for i, p := range batch {
		t := &Tx{ctx: context.WithoutCancel(p.ctx), tx: tx, db: db}
		if shared {
			if _, err := t.exec(`SAVEPOINT batch_update`); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
		}
		errs[i] = runBody(t, p.fn)
		*missed = append(*missed, t.missed...)
		switch {
		case !shared:
		case errs[i] != nil:
			if _, err := t.exec(`ROLLBACK TO batch_update`); err != nil {
				return fmt.Errorf("roll back one update of a batch: %w", err)
			}
			fallthrough
		default:
			// A RELEASE that fails means SQLite rolled back the whole
			// transaction itself (a full disk, an I/O error): nothing of
			// the batch stands, and every caller must hear so.
			if _, err := t.exec(`RELEASE batch_update`); err != nil {
				return fmt.Errorf("release one update of a batch: %w", err)
			}
		}
		if errs[i] == nil {
			committed++
		}
	}
	if committed == 0 {
		_ = tx.Rollback()
		return nil
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// runBody calls fn, turning a panic into its caller's error: the panic
// must not strand the other callers of the batch.
func runBody(t *Tx, fn func(*Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store update panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(t)
}
