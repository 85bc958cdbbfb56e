package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/cdr"
)

// Defaults for CDRWriterOptions.
//
// Most of what a record costs to write is the index pages its batch dirties,
// and records in one batch share pages, so larger batches are cheaper per
// record. The interval sets the batch size at production rates: a second at
// 1,500 calls/s is 1,500 records, which cost about half the CPU per record
// that 200 ms batches of 300 do (BenchmarkCDRWriter/paced). BatchSize caps a
// batch when the writer has fallen behind, so that a transaction's dirty
// pages stay well inside the writer's page cache (see writeCacheKiB).
const (
	DefaultCDRBatchSize     = 2048
	DefaultCDRFlushInterval = time.Second
	DefaultCDRQueueSize     = 65536
)

const (
	// writeAttempts bounds how often a batch is retried after an error that
	// may pass (a lock held past busy_timeout, a full disk being cleaned).
	// More would only let the queue overflow while the batch waits.
	writeAttempts = 3
	retryBackoff  = 100 * time.Millisecond
)

// CDRWriterOptions tunes a CDRWriter. The zero value uses the defaults.
type CDRWriterOptions struct {
	// BatchSize is the most records written in one transaction.
	BatchSize int
	// FlushInterval bounds how long a record waits for its batch to fill,
	// and so how many accepted records a crash of the process loses (a
	// clean Close loses none).
	FlushInterval time.Duration
	// QueueSize is how many records may wait for the disk. The queue is
	// allocated up front (about 200 bytes a record), so memory use is
	// fixed; at 65536 it absorbs several seconds of a slow disk at
	// thousands of calls per second.
	QueueSize int
	// Logger receives drop and write-failure warnings. Nil means the
	// logrus standard logger.
	Logger *logrus.Entry
}

func (o CDRWriterOptions) withDefaults() CDRWriterOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultCDRBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultCDRFlushInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultCDRQueueSize
	}
	if o.Logger == nil {
		o.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
	return o
}

// CDRWriter persists call detail records in the background, in batches, so
// that finishing a call never waits for the disk.
//
// Drop policy: RecordCall never blocks. When the queue is full — the disk
// has fallen behind by QueueSize records — the new record is dropped rather
// than stalling call handling; a B2BUA that stops answering INVITEs because
// its accounting disk is slow loses far more than a few CDRs. Every drop is
// counted in Dropped, and a warning with the running total is logged at most
// once a second so that an overload does not also flood the log. Records
// offered after Close has begun are dropped and counted the same way.
//
// A record that was accepted is written unless the database fails it: a
// record the store can never accept (two legs with one index) is counted in
// Failed before its batch is written, a batch hit by a constraint violation
// is retried record by record so one bad record cannot take thousands of
// good ones with it, and any other error is retried a few times before the
// batch is counted in Failed. Close drains the queue, so a clean shutdown
// loses nothing; a crash loses what is queued, about FlushInterval's worth
// of records at a steady rate, and a power cut also the last commits (see
// synchronous in dsn).
type CDRWriter struct {
	db   *DB
	opts CDRWriterOptions
	log  *logrus.Entry

	// mu makes "check closed, then send" atomic with respect to Close, which
	// closes queue: without it a RecordCall racing Close could send on a
	// closed channel (a panic) or slip a record in after the final drain.
	// RecordCall takes it shared, so callers do not serialise on it.
	mu     sync.RWMutex
	closed bool
	queue  chan cdr.Record
	// wake calls the writer before its tick: a full batch is waiting, or
	// Close. Records do not wake it one by one: at thousands of calls per
	// second a wake-up per record costs more than writing it.
	wake chan struct{}

	// cancel aborts in-flight writes when Close's context ends first; done
	// is closed when the background goroutine has exited.
	cancel context.CancelFunc
	done   chan struct{}

	written, dropped, failed atomic.Uint64
	dropWarn, failWarn       logLimiter
}

// NewCDRWriter starts a writer on db. Close it before closing db.
func NewCDRWriter(db *DB, opts CDRWriterOptions) *CDRWriter {
	opts = opts.withDefaults()
	// The write context is not derived from a caller's context: records
	// must outlive whatever request created the writer, and only Close
	// decides when writing stops.
	ctx, cancel := context.WithCancel(context.Background())
	w := &CDRWriter{
		db:     db,
		opts:   opts,
		log:    opts.Logger.WithField("component", "cdr-writer"),
		queue:  make(chan cdr.Record, opts.QueueSize),
		wake:   make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go w.run(ctx)
	return w
}

// RecordCall queues r for writing and returns at once; see CDRWriter for
// what happens when the queue is full. ctx is not used to abandon the
// record: the call is over, and its record should be kept even when the
// context of whoever reports it has ended.
func (w *CDRWriter) RecordCall(ctx context.Context, r cdr.Record) {
	// The caller may reuse its Legs slice once we return; the record sits in
	// the queue for a while.
	r.Legs = slices.Clone(r.Legs)

	w.mu.RLock()
	accepted := false
	if !w.closed {
		select {
		case w.queue <- r:
			accepted = true
		default:
		}
	}
	closed := w.closed
	w.mu.RUnlock()

	if accepted {
		if len(w.queue) >= w.opts.BatchSize {
			w.signal()
		}
		return
	}
	n := w.dropped.Add(1)
	if w.dropWarn.allow(time.Now()) {
		w.log.WithContext(ctx).WithFields(logrus.Fields{
			"dropped_total": n,
			"queue_size":    w.opts.QueueSize,
			"writer_closed": closed,
		}).Warn("cdr queue full or closed, dropping call records")
	}
}

// Written reports how many records have been committed to the database.
func (w *CDRWriter) Written() uint64 { return w.written.Load() }

// Dropped reports how many records were never written because the queue
// was full, the writer was closed, or Close gave up before reaching them.
func (w *CDRWriter) Dropped() uint64 { return w.dropped.Load() }

// Failed reports how many records the database refused or could not store
// after retries.
func (w *CDRWriter) Failed() uint64 { return w.failed.Load() }

// Close stops accepting records and waits until every queued record has been
// written. If ctx ends first, the write in progress is aborted, the records
// still queued are counted in Dropped, and the error wraps ctx.Err(). Either
// way the background goroutine has exited when Close returns, so db may be
// closed next. Close may be called more than once.
func (w *CDRWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue) // the goroutine drains what is buffered, then exits
	}
	w.mu.Unlock()
	w.signal()

	select {
	case <-w.done:
		w.cancel()
		return nil
	case <-ctx.Done():
		before := w.dropped.Load()
		w.cancel()
		// With its context cancelled the goroutine fails every remaining
		// batch at once, so this wait is short.
		<-w.done
		return fmt.Errorf("close cdr writer: %d records not written: %w", w.dropped.Load()-before, ctx.Err())
	}
}

// signal wakes the writer unless a wake-up is pending already.
func (w *CDRWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes what is queued every FlushInterval, or sooner when a batch is
// full, in batches of at most BatchSize.
func (w *CDRWriter) run(ctx context.Context) {
	defer close(w.done)

	batch := make([]cdr.Record, 0, w.opts.BatchSize)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		w.write(ctx, batch)
		clear(batch) // let the strings go before the slots are reused
		batch = batch[:0]
	}

	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.wake:
		case <-tick.C:
		}
		// Drain what is queued now; records that come meanwhile wait for
		// the next round.
		for n := len(w.queue); n > 0; n-- {
			r, ok := <-w.queue
			if !ok {
				break
			}
			batch = append(batch, r)
			if len(batch) >= w.opts.BatchSize {
				flush()
			}
		}
		flush()
		if w.isClosed() && len(w.queue) == 0 {
			// Close closed the queue after setting closed: nothing more
			// can arrive, and what was buffered has been written.
			return
		}
	}
}

func (w *CDRWriter) isClosed() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closed
}

// write stores one batch, retrying as the CDRWriter documentation describes,
// and accounts for every record in it.
func (w *CDRWriter) write(ctx context.Context, batch []cdr.Record) {
	batch = w.dropInvalid(batch)
	if len(batch) == 0 {
		return
	}
	n := uint64(len(batch))
	for attempt := 1; ; attempt++ {
		err := w.db.InsertCDRs(ctx, batch)
		switch {
		case err == nil:
			w.written.Add(n)
			return
		case ctx.Err() != nil:
			w.abandon(n)
			return
		case isRecordError(err):
			w.writeEach(ctx, batch)
			return
		case attempt >= writeAttempts:
			w.fail(n, err)
			return
		}
		t := time.NewTimer(retryBackoff << (attempt - 1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			w.abandon(n)
			return
		}
	}
}

// dropInvalid counts the records InsertCDRs would refuse as failed and
// returns the others, in place. Finding them here spares the batch a round
// of one transaction per record.
func (w *CDRWriter) dropInvalid(batch []cdr.Record) []cdr.Record {
	valid := batch[:0]
	for i := range batch {
		if err := validateRecord(&batch[i]); err != nil {
			w.fail(1, err)
			continue
		}
		valid = append(valid, batch[i])
	}
	return valid
}

// writeEach stores a batch one record per transaction, so only the records
// the database refuses are lost.
func (w *CDRWriter) writeEach(ctx context.Context, batch []cdr.Record) {
	for i := range batch {
		err := w.db.InsertCDRs(ctx, batch[i:i+1])
		switch {
		case err == nil:
			w.written.Add(1)
		case ctx.Err() != nil:
			w.abandon(uint64(len(batch) - i))
			return
		default:
			w.fail(1, err)
		}
	}
}

func (w *CDRWriter) fail(n uint64, err error) {
	total := w.failed.Add(n)
	if w.failWarn.allow(time.Now()) {
		w.log.WithError(err).WithFields(logrus.Fields{
			"records":      n,
			"failed_total": total,
		}).Error("writing call records failed")
	}
}

// abandon accounts for records Close gave up on.
func (w *CDRWriter) abandon(n uint64) {
	total := w.dropped.Add(n)
	if w.dropWarn.allow(time.Now()) {
		w.log.WithFields(logrus.Fields{
			"records":       n,
			"dropped_total": total,
		}).Warn("cdr writer closed before queued call records were written")
	}
}

// logLimiter lets one message through per second; the zero value is ready.
type logLimiter struct {
	last atomic.Int64 // unix nanoseconds of the last message let through
}

func (l *logLimiter) allow(now time.Time) bool {
	prev := l.last.Load()
	if prev != 0 && now.UnixNano()-prev < int64(time.Second) {
		return false
	}
	// Of several goroutines racing here, only one wins the swap and logs.
	return l.last.CompareAndSwap(prev, now.UnixNano())
}
