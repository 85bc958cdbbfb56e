package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func newTestWriter(t testing.TB, db *DB, opts CDRWriterOptions) *CDRWriter {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = quietLogger()
	}
	w := NewCDRWriter(db, opts)
	// Runs before the db cleanup registered earlier; a second Close is a
	// no-op for tests that already closed it.
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func TestCDRWriterDrainsOnClose(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	w := newTestWriter(t, db, CDRWriterOptions{})
	ctx := testContext(t)

	const total = 10000
	for i := range total {
		w.RecordCall(ctx, sampleRecord(i))
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if n := countCDRs(t, db); n != total {
		t.Errorf("%d rows after Close, want %d", n, total)
	}
	var legs int
	if err := db.read.QueryRowContext(ctx, "SELECT COALESCE(SUM(json_array_length(legs)), 0) FROM cdr").Scan(&legs); err != nil {
		t.Fatal(err)
	}
	if legs != 2*total {
		t.Errorf("%d legs after Close, want %d", legs, 2*total)
	}
	if w.Written() != total || w.Dropped() != 0 || w.Failed() != 0 {
		t.Errorf("written/dropped/failed = %d/%d/%d, want %d/0/0", w.Written(), w.Dropped(), w.Failed(), total)
	}
}

func TestCDRWriterFlushesOnInterval(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	w := newTestWriter(t, db, CDRWriterOptions{BatchSize: 1000, FlushInterval: 10 * time.Millisecond})
	ctx := testContext(t)

	w.RecordCall(ctx, sampleRecord(1))
	// Far fewer records than a batch: only the interval can write it.
	waitFor(t, 10*time.Second, func() bool { return countCDRs(t, db) == 1 })
}

// lockDatabase takes SQLite's write lock through a connection of its own, as
// an operator's shell or a stuck process would, and returns its release.
func lockDatabase(t *testing.T, path string) func() {
	t.Helper()
	ctx := testContext(t)
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				t.Error(err)
			}
			_ = conn.Close()
			_ = other.Close()
		})
	}
	t.Cleanup(release)
	return release
}

func TestCDRWriterDropsWhenQueueFull(t *testing.T) {
	// A long busy timeout keeps the writer waiting on the lock, not failing.
	db, path := openTestDB(t, Options{BusyTimeout: time.Minute})
	log, hook := quietLogger()
	const queue = 4
	w := newTestWriter(t, db, CDRWriterOptions{BatchSize: 1, QueueSize: queue, Logger: log})
	ctx := testContext(t)

	release := lockDatabase(t, path)
	const total = 1000
	start := time.Now()
	for i := range total {
		w.RecordCall(ctx, sampleRecord(i)) // must not block although the disk is stuck
	}
	elapsed := time.Since(start)

	// The writer holds at most one record (its batch) while it waits for the
	// lock, and the queue holds the rest.
	if d := w.Dropped(); d < total-queue-1 {
		t.Errorf("dropped %d of %d records with a %d-record queue, want at least %d", d, total, queue, total-queue-1)
	}
	warnings := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warnings++
		}
	}
	if maxWarnings := 1 + int(elapsed/time.Second); warnings < 1 || warnings > maxWarnings {
		t.Errorf("logged %d drop warnings in %v, want 1..%d", warnings, elapsed, maxWarnings)
	}

	release()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rows := countCDRs(t, db)
	if uint64(rows)+w.Dropped() != total {
		t.Errorf("%d rows + %d dropped != %d offered", rows, w.Dropped(), total)
	}
	if uint64(rows) != w.Written() {
		t.Errorf("%d rows, but Written() = %d", rows, w.Written())
	}
}

func TestCDRWriterConcurrentRecordCall(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	w := newTestWriter(t, db, CDRWriterOptions{BatchSize: 64, FlushInterval: time.Millisecond})
	ctx := testContext(t)

	const goroutines, each = 32, 250
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := sampleRecord(g*each + i)
				w.RecordCall(ctx, r)
				// The writer must have copied the legs: scribbling on
				// ours must not reach the database.
				r.Legs[1].Peer = "scribbled"
			}
		})
	}
	wg.Wait()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	const total = goroutines * each
	if n := countCDRs(t, db); n != total {
		t.Errorf("%d rows, want %d", n, total)
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped %d records with room in the queue", w.Dropped())
	}
	var scribbled int
	if err := db.read.QueryRowContext(ctx, "SELECT COUNT(*) FROM cdr c, json_each(c.legs) j WHERE j.value ->> 'peer' = 'scribbled'").Scan(&scribbled); err != nil {
		t.Fatal(err)
	}
	if scribbled != 0 {
		t.Errorf("%d legs were changed by the caller after RecordCall", scribbled)
	}
}

func TestCDRWriterRecordCallRacingClose(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	w := newTestWriter(t, db, CDRWriterOptions{})
	ctx := testContext(t)

	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.RecordCall(ctx, sampleRecord(g*each+i)) // must not panic once closed
			}
		})
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	// Every record was either written before Close returned or counted as
	// dropped; none may be written afterwards.
	rows := countCDRs(t, db)
	if uint64(rows)+w.Dropped() != goroutines*each {
		t.Errorf("%d rows + %d dropped != %d offered", rows, w.Dropped(), goroutines*each)
	}
}

func TestCDRWriterCloseDeadline(t *testing.T) {
	db, path := openTestDB(t, Options{BusyTimeout: time.Minute})
	w := newTestWriter(t, db, CDRWriterOptions{BatchSize: 10})
	ctx := testContext(t)

	release := lockDatabase(t, path)
	defer release()
	const total = 100
	for i := range total {
		w.RecordCall(ctx, sampleRecord(i))
	}

	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := w.Close(closeCtx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with the database locked = %v, want DeadlineExceeded", err)
	}
	if w.Dropped()+w.Written() != total {
		t.Errorf("dropped %d + written %d != %d offered", w.Dropped(), w.Written(), total)
	}
}

func TestCDRWriterIsolatesBadRecords(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	w := newTestWriter(t, db, CDRWriterOptions{BatchSize: 100})
	ctx := testContext(t)

	// Two kinds of bad record: one the store refuses before writing (two
	// legs with one index), and one the database refuses in the middle of
	// a multi-row INSERT (a constraint it was given).
	const total = 150
	refuseCallID(t, db, sampleRecord(83).CallID)
	for i := range total {
		r := sampleRecord(i)
		if i == 17 {
			r.Legs = append(r.Legs, r.Legs[0]) // duplicate leg index: refused
		}
		w.RecordCall(ctx, r)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countCDRs(t, db); n != total-2 {
		t.Errorf("%d rows, want %d: a bad record must not sink its batch", n, total-2)
	}
	if w.Failed() != 2 || w.Written() != total-2 {
		t.Errorf("failed/written = %d/%d, want 2/%d", w.Failed(), w.Written(), total-2)
	}
	for _, i := range []int{17, 83} {
		got, err := db.ListCDRs(ctx, CDRFilter{CallID: sampleRecord(i).CallID})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("bad record %d was stored", i)
		}
	}
}

func TestCDRWriterDefaults(t *testing.T) {
	o := CDRWriterOptions{}.withDefaults()
	if o.BatchSize != DefaultCDRBatchSize || o.FlushInterval != DefaultCDRFlushInterval || o.QueueSize != DefaultCDRQueueSize || o.Logger == nil {
		t.Errorf("zero options became %+v", o)
	}
	// A full batch's dirty pages, about one per record in each of the two
	// random-key indexes plus the table's, must fit in the writer's page
	// cache, or SQLite spills them to the WAL before the commit.
	const pageSize, pagesPerRecord = 4096, 4
	if need := DefaultCDRBatchSize * pagesPerRecord * pageSize; need > writeCacheKiB<<10 {
		t.Errorf("a batch of %d records may dirty %d MiB, more than the %d MiB page cache", DefaultCDRBatchSize, need>>20, writeCacheKiB>>10)
	}
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{0, false},
		{999 * time.Millisecond, false},
		{time.Second, true},
		{1500 * time.Millisecond, false},
		{2 * time.Second, true},
	}
	for _, s := range steps {
		if got := l.allow(now.Add(s.after)); got != s.want {
			t.Errorf("allow at +%v = %v, want %v", s.after, got, s.want)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		<-tick.C
	}
}
