package delivery

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"callpath/internal/siptest"
	"callpath/store"
)

// Events of one subscription reach a real HTTPS sink in enqueue order, with
// the CloudEvents content type, the bearer token and the stored body; the
// deliverer sleeps long (Recheck a minute) and Notify wakes it. Neither the
// token nor the body appears in the logs.
func TestDeliversInOrderWithHeaders(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	sink := newSink(t, ca, nil)
	opts, hook := testOptions(ca)
	opts.Recheck = time.Minute
	m := &recMetrics{}
	opts.Metrics = m
	d, _ := start(t, db, opts)

	want := ids("ev", 20)
	evs := events("sub-1", sink.URL(), "s3cret-token", want)
	enqueue(t, db, evs...)
	d.Notify()
	waitFor(t, 10*time.Second, "all events delivered", func() bool {
		_, acc := sink.snapshot()
		return len(acc) == len(want)
	})
	arrivals, accepted := sink.snapshot()
	if !equal(accepted, want) {
		t.Fatalf("received %v, want %v", accepted, want)
	}
	for i, r := range arrivals {
		if r.contentType != "application/cloudevents+json" {
			t.Errorf("%s: Content-Type %q", r.id, r.contentType)
		}
		if r.auth != "Bearer s3cret-token" {
			t.Errorf("%s: Authorization %q", r.id, r.auth)
		}
		if r.correlator != r.id {
			t.Errorf("%s: x-correlator %q", r.id, r.correlator)
		}
		if !bytes.Equal(r.body, evs[i].Body) {
			t.Errorf("%s: body %s, want %s", r.id, r.body, evs[i].Body)
		}
	}
	waitFor(t, 5*time.Second, "outbox empty", func() bool { live, dead := depth(t, db); return live == 0 && dead == 0 })
	// The metric is counted after the outcome's commit, so it may trail the
	// outbox by a moment.
	waitFor(t, 5*time.Second, "20 deliveries counted", func() bool { return m.count(OutcomeDelivered) == len(want) })

	// No token: no Authorization header.
	enqueue(t, db, event("plain", "sub-2", sink.URL(), ""))
	d.Notify()
	waitFor(t, 10*time.Second, "the token-less event", func() bool { _, acc := sink.snapshot(); return len(acc) == len(want)+1 })
	arrivals, _ = sink.snapshot()
	if a := arrivals[len(arrivals)-1]; a.auth != "" {
		t.Errorf("Authorization %q without a token", a.auth)
	}
	noSecretsLogged(t, hook, "s3cret-token", `"mediaSessionId"`, "k=v")
}

// A sink that answers 503 three times (Retry-After: 0) and then 204 takes
// every event exactly once, in order; the 503s are counted as retries.
func TestRetriesThenExactlyOnceInOrder(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	sink := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		if n < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	opts, _ := testOptions(ca)
	m := &recMetrics{}
	opts.Metrics = m
	d, _ := start(t, db, opts)
	want := ids("ev", 10)
	enqueue(t, db, events("sub-1", sink.URL(), "tok", want)...)
	d.Notify()
	waitFor(t, 10*time.Second, "all events delivered", func() bool { _, acc := sink.snapshot(); return len(acc) == len(want) })
	waitFor(t, 5*time.Second, "outbox empty", func() bool { live, dead := depth(t, db); return live == 0 && dead == 0 })
	arrivals, accepted := sink.snapshot()
	if !equal(accepted, want) {
		t.Fatalf("accepted %v, want each of %v once in order", accepted, want)
	}
	if len(arrivals) != len(want)+3 {
		t.Errorf("%d requests, want %d", len(arrivals), len(want)+3)
	}
	for i := range 3 {
		if arrivals[i].id != want[0] {
			t.Errorf("request %d was %s; the head must be retried before the rest", i, arrivals[i].id)
		}
	}
	waitFor(t, 5*time.Second, "3 retries counted", func() bool { return m.count(OutcomeRetry) == 3 })
}

// One sink stuck in retries does not hold up another.
func TestSinksProgressIndependently(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	stuck := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	var slow *testSink
	slow = newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		slow.blockUntilGone(r) // holds its one request in flight
	})
	fine := newSink(t, ca, nil)
	opts, _ := testOptions(ca)
	opts.MaxAttempts = 1000
	opts.Workers = 3
	d, _ := start(t, db, opts)

	enqueue(t, db, events("sub-stuck", stuck.URL(), "", ids("stuck", 3))...)
	enqueue(t, db, events("sub-slow", slow.URL(), "", ids("slow", 3))...)
	want := ids("fine", 10)
	enqueue(t, db, events("sub-fine", fine.URL(), "", want)...)
	d.Notify()
	waitFor(t, 10*time.Second, "the healthy sink's events", func() bool { _, acc := fine.snapshot(); return len(acc) == len(want) })
	if _, acc := fine.snapshot(); !equal(acc, want) {
		t.Fatalf("healthy sink got %v, want %v", acc, want)
	}
	waitFor(t, 10*time.Second, "retries to the failing sink", func() bool { a, _ := stuck.snapshot(); return len(a) >= 3 })
	arr, _ := stuck.snapshot()
	for _, a := range arr {
		if a.id != "stuck-000" {
			t.Fatalf("failing sink got %s before its head was delivered", a.id)
		}
	}
	if arr, _ := slow.snapshot(); len(arr) != 1 {
		t.Errorf("blocked sink got %d requests, want its one in flight", len(arr))
	}
}

// 410: the subscription's events are all buried, OnSinkGone is called
// once, and nothing more is POSTed to that sink.
func TestGoneBuriesSubscription(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	sink := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		w.WriteHeader(http.StatusGone)
	})
	opts, _ := testOptions(ca)
	var gone atomic.Int32
	var goneSub atomic.Value
	opts.OnSinkGone = func(sub string) { gone.Add(1); goneSub.Store(sub) }
	m := &recMetrics{}
	opts.Metrics = m
	d, stop := start(t, db, opts)
	enqueue(t, db, events("sub-gone", sink.URL(), "tok", ids("ev", 5))...)
	d.Notify()
	waitFor(t, 10*time.Second, "OnSinkGone", func() bool { return gone.Load() > 0 })
	waitFor(t, 5*time.Second, "dead letters", func() bool { live, dead := depth(t, db); return live == 0 && dead == 5 })
	d.Notify()
	stop()
	if n := gone.Load(); n != 1 {
		t.Errorf("OnSinkGone called %d times", n)
	}
	if s := goneSub.Load(); s != "sub-gone" {
		t.Errorf("OnSinkGone(%v)", s)
	}
	if arr, _ := sink.snapshot(); len(arr) != 1 {
		t.Errorf("%d POSTs to a gone sink, want 1", len(arr))
	}
	for _, e := range deadLetters(t, db) {
		if e.LastError != GoneReason {
			t.Errorf("%s: last error %q", e.EventID, e.LastError)
		}
	}
	waitFor(t, 5*time.Second, "one gone sink counted", func() bool { return m.count(OutcomeGone) == 1 })
}

// 400 is refused for good: buried after one attempt, and the sink's next
// event goes on. Exhausted retries are buried with the last error. Both are
// listed by DeadLetters.
func TestDeadLetters(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	refusing := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		if id == "bad" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	failing := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		w.WriteHeader(http.StatusBadGateway)
	})
	opts, _ := testOptions(ca)
	opts.MaxAttempts = 3
	m := &recMetrics{}
	opts.Metrics = m
	d, _ := start(t, db, opts)
	enqueue(t, db, event("bad", "sub-r", refusing.URL(), ""), event("good", "sub-r", refusing.URL(), ""),
		event("doomed", "sub-f", failing.URL(), ""))
	d.Notify()
	waitFor(t, 10*time.Second, "two dead letters and one delivery", func() bool {
		live, dead := depth(t, db)
		return live == 0 && dead == 2
	})
	if _, acc := refusing.snapshot(); !equal(acc, []string{"good"}) {
		t.Errorf("refusing sink accepted %v", acc)
	}
	if arr, _ := failing.snapshot(); len(arr) != 3 {
		t.Errorf("failing sink got %d requests, want MaxAttempts=3", len(arr))
	}
	byID := map[string]store.OutboxEvent{}
	for _, e := range deadLetters(t, db) {
		byID[e.EventID] = e
	}
	if e := byID["bad"]; e.Attempts != 1 || e.LastError != "sink answered 400 Bad Request" {
		t.Errorf("bad: attempts %d, last error %q", e.Attempts, e.LastError)
	}
	if e := byID["doomed"]; e.Attempts != 3 || e.LastError != "gave up after 3 attempts: sink answered 502 Bad Gateway" {
		t.Errorf("doomed: attempts %d, last error %q", e.Attempts, e.LastError)
	}
	waitFor(t, 5*time.Second, "2 dead, 2 retries and 1 delivery counted", func() bool {
		return m.count(OutcomeDead) == 2 && m.count(OutcomeRetry) == 2 && m.count(OutcomeDelivered) == 1
	})
}

// An event older than MaxAge that fails is buried.
func TestMaxAgeBuries(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	sink := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		w.WriteHeader(http.StatusTooManyRequests)
	})
	opts, _ := testOptions(ca)
	opts.MaxAge = time.Hour
	d, _ := start(t, db, opts)
	old := event("old", "sub", sink.URL(), "")
	old.CreatedAt = time.Now().Add(-2 * time.Hour)
	enqueue(t, db, old)
	d.Notify()
	waitFor(t, 10*time.Second, "dead letter", func() bool { _, dead := depth(t, db); return dead == 1 })
	if e := deadLetters(t, db)[0]; !strings.HasPrefix(e.LastError, "gave up after 1h0m0s (1 attempts): sink answered 429") {
		t.Errorf("last error %q", e.LastError)
	}
}

// A POST without an answer within Timeout is retried.
func TestTimeoutRetries(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	var sink *testSink
	sink = newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		if n == 0 {
			sink.blockUntilGone(r)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	opts, _ := testOptions(ca)
	opts.Timeout = 200 * time.Millisecond
	d, _ := start(t, db, opts)
	enqueue(t, db, event("slow", "sub", sink.URL(), ""))
	d.Notify()
	waitFor(t, 10*time.Second, "delivery after a timeout", func() bool { _, acc := sink.snapshot(); return len(acc) == 1 })
	if arr, _ := sink.snapshot(); len(arr) != 2 {
		t.Errorf("%d requests, want 2", len(arr))
	}
}

// A redirect is not followed: the event is buried and the target gets
// nothing.
func TestRedirectNotFollowed(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	target := newSink(t, ca, nil)
	sink := newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		w.Header().Set("Location", target.URL())
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	opts, _ := testOptions(ca)
	d, _ := start(t, db, opts)
	enqueue(t, db, event("ev", "sub", sink.URL(), "tok"))
	d.Notify()
	waitFor(t, 10*time.Second, "dead letter", func() bool { _, dead := depth(t, db); return dead == 1 })
	if arr, _ := target.snapshot(); len(arr) != 0 {
		t.Errorf("redirect target got %d requests", len(arr))
	}
	if e := deadLetters(t, db)[0]; !strings.Contains(e.LastError, "307") {
		t.Errorf("last error %q", e.LastError)
	}
}

// Stopping mid-way and starting again on a new handle of the same file
// delivers every event at least once and in order; only the event in flight
// at the stop may come twice.
func TestDurableAcrossRestart(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, path := newDB(t)
	var sink *testSink
	sink = newSink(t, ca, func(w http.ResponseWriter, r *http.Request, n int, id string) {
		if n >= 4 {
			sink.blockUntilGone(r) // the fifth request hangs until abandoned
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	opts, _ := testOptions(ca)
	opts.DrainTimeout = 50 * time.Millisecond
	want := ids("ev", 12)
	enqueue(t, db, events("sub", sink.URL(), "tok", want)...)
	d, stop := start(t, db, opts)
	d.Notify()
	waitFor(t, 10*time.Second, "the hanging request", func() bool { a, _ := sink.snapshot(); return len(a) == 5 })
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	sink.setRespond(nil) // healthy from now on
	db2 := openDB(t, path)
	if live, _ := depth(t, db2); live != len(want)-4 {
		t.Fatalf("%d events left after the restart, want %d", live, len(want)-4)
	}
	d2, _ := start(t, db2, opts)
	d2.Notify()
	waitFor(t, 10*time.Second, "outbox empty", func() bool { live, dead := depth(t, db2); return live == 0 && dead == 0 })
	arrivals, _ := sink.snapshot()
	var got []string
	count := map[string]int{}
	for _, a := range arrivals {
		count[a.id]++
		if len(got) == 0 || got[len(got)-1] != a.id {
			got = append(got, a.id)
		}
	}
	if !equal(got, want) {
		t.Fatalf("received (repeats collapsed) %v, want %v", got, want)
	}
	for id, n := range count {
		if n > 1 && id != "ev-004" {
			t.Errorf("%s received %d times; only the one in flight may repeat", id, n)
		}
	}
	if count["ev-004"] != 2 {
		t.Errorf("the abandoned event was received %d times, want 2", count["ev-004"])
	}
}

// Run twice is refused.
func TestRunTwice(t *testing.T) {
	db, _ := newDB(t)
	opts, _ := testOptions(nil)
	d, _ := start(t, db, opts)
	waitFor(t, 5*time.Second, "Run to start", func() bool { return d.running.Load() })
	if err := d.Run(testContext(t)); err == nil {
		t.Fatal("second Run accepted")
	}
}
