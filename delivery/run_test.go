package delivery

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"callpath/internal/siptest"
	"callpath/store"
)

// countingStore wraps the real store, counts outbox reads and can fail the
// next Delivered.
type countingStore struct {
	*store.DB
	reads         atomic.Int64
	failDelivered atomic.Int32
}

func (c *countingStore) DueEvents(ctx context.Context, now time.Time, limit int) ([]store.OutboxEvent, error) {
	c.reads.Add(1)
	return c.DB.DueEvents(ctx, now, limit)
}

func (c *countingStore) Delivered(ctx context.Context, seq int64) error {
	if c.failDelivered.Add(-1) >= 0 {
		return errors.New("disk on fire")
	}
	return c.DB.Delivered(ctx, seq)
}

// While a POST hangs and while a retry is pending the deliverer sleeps: a
// handful of outbox reads, not a busy loop.
func TestNoBusyLoop(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	cs := &countingStore{DB: db}
	var sink *testSink
	sink = newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		switch n {
		case 0:
			sink.blockUntilGone(r) // times out after 300 ms
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable) // retried after 300 ms
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	opts, _ := testOptions(ca)
	opts.Timeout = 300 * time.Millisecond
	opts.BaseDelay = 200 * time.Millisecond
	opts.MaxDelay = 300 * time.Millisecond
	opts.Rand = func() float64 { return 0.5 } // delays 200 ms, then 300 ms
	d, _ := start(t, cs, opts)
	enqueue(t, db, event("ev", "sub", sink.URL(), ""))
	d.Notify()
	waitFor(t, 10*time.Second, "delivery", func() bool { _, acc := sink.snapshot(); return len(acc) == 1 })
	// One read per wake-up: start, notify, each finished attempt, each due
	// time; a busy loop would make thousands in the ~800 ms this takes.
	t.Logf("%d outbox reads", cs.reads.Load())
	if n := cs.reads.Load(); n > 12 {
		t.Errorf("%d outbox reads", n)
	}
}

// An outcome the store cannot record leaves the event in the outbox: it is
// sent again (at least once), after a pause rather than at once.
func TestStoreFailureResends(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	cs := &countingStore{DB: db}
	cs.failDelivered.Store(1)
	sink := newSink(t, ca, nil)
	opts, hook := testOptions(ca)
	d, _ := start(t, cs, opts)
	enqueue(t, db, event("a", "sub", sink.URL(), ""), event("b", "sub", sink.URL(), ""))
	d.Notify()
	waitFor(t, 10*time.Second, "outbox empty", func() bool { live, _ := depth(t, db); return live == 0 })
	if _, acc := sink.snapshot(); !equal(acc, []string{"a", "a", "b"}) {
		t.Errorf("sink accepted %v, want a twice (its first delivery was not recorded), then b", acc)
	}
	var logged bool
	for _, e := range hook.AllEntries() {
		if e.Message == "recording the delivery outcome; the event will be sent again" {
			logged = true
		}
	}
	if !logged {
		t.Error("store failure not logged")
	}
}

// Stopping lets a POST in flight finish (within DrainTimeout) and records
// its outcome.
func TestStopLetsInFlightFinish(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	arrived := make(chan struct{})
	proceed := make(chan struct{})
	var once sync.Once
	sink := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		once.Do(func() { close(arrived) })
		<-proceed
		w.WriteHeader(http.StatusNoContent)
	})
	opts, hook := testOptions(ca)
	opts.DrainTimeout = 10 * time.Second
	d, stop := start(t, db, opts)
	enqueue(t, db, event("ev", "sub", sink.URL(), ""), event("next", "sub", sink.URL(), ""))
	d.Notify()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request")
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	waitFor(t, 10*time.Second, "the deliverer to start stopping", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Message == "stopping: waiting for the POSTs in flight" {
				return true
			}
		}
		return false
	})
	close(proceed)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if live, _ := depth(t, db); live != 1 {
		t.Errorf("%d events left, want 1 (the in-flight one recorded, the next not started)", live)
	}
	if _, acc := sink.snapshot(); !equal(acc, []string{"ev"}) {
		t.Errorf("sink accepted %v", acc)
	}
}

// Notify never blocks.
func TestNotifyNeverBlocks(t *testing.T) {
	d := New(nil, Options{})
	for range 1000 {
		d.Notify()
	}
}
