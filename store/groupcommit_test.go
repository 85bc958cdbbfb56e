package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// queued reports how many Updates wait behind the running batch.
func (db *DB) queued() int {
	db.commits.mu.Lock()
	defer db.commits.mu.Unlock()
	return len(db.commits.waiting)
}

func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for db.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d updates queued, want %d", db.queued(), n)
		}
		<-tick.C
	}
}

func outboxIDs(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	rows, err := db.read.Query(`SELECT event_id FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	return ids
}

func enqueueID(tx *Tx, id string) error {
	return tx.Enqueue(OutboxEvent{EventID: id, SubscriptionID: "s", Sink: "https://sink", Type: "t", Body: []byte("{}")})
}

// Updates that arrive while a transaction runs share the next one, and
// yet each stands alone: one that fails, or panics, loses only its own
// changes and gets its own error; the others are committed.
func TestUpdatesWaitingTogetherShareOneTransaction(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()

	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(ctx, func(tx *Tx) error {
			close(started)
			<-release // hold the writer while the others queue
			return enqueueID(tx, "first")
		})
	}()
	<-started

	const n = 10
	failure := errors.New("body failed")
	var mu sync.Mutex
	txOf := map[int]execer{}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(ctx, func(tx *Tx) error {
				mu.Lock()
				txOf[i] = tx.tx
				mu.Unlock()
				if err := enqueueID(tx, fmt.Sprint("e", i)); err != nil {
					return err
				}
				switch i {
				case 3:
					return failure
				case 6:
					panic("body panicked")
				}
				return nil
			})
		}()
	}
	waitQueued(t, db, n)
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first update: %v", err)
	}

	for i, err := range errs {
		switch i {
		case 3:
			if !errors.Is(err, failure) {
				t.Errorf("update 3: %v, want its own failure", err)
			}
		case 6:
			if err == nil || !strings.Contains(err.Error(), "body panicked") {
				t.Errorf("update 6: %v, want the panic as an error", err)
			}
		default:
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}
	}
	for i := 1; i < n; i++ {
		if txOf[i] != txOf[0] {
			t.Fatalf("update %d ran in another transaction than update 0: not grouped", i)
		}
	}
	ids := outboxIDs(t, db)
	for i := range n {
		want := i != 3 && i != 6
		if ids[fmt.Sprint("e", i)] != want {
			t.Errorf("event e%d stored = %v, want %v", i, !want, want)
		}
	}
	if !ids["first"] {
		t.Error("the first update's event is missing")
	}
	if db.queued() != 0 {
		t.Errorf("%d updates left queued", db.queued())
	}
}

// A caller whose context ends while it waits for the writer gets its
// context's error, and its body never runs.
func TestUpdateAbandonedWhileWaitingNeverRuns(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(context.Background(), func(tx *Tx) error { close(started); <-release; return nil })
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	ran := make(chan struct{}, 1)
	go func() {
		abandoned <- db.Update(ctx, func(tx *Tx) error { ran <- struct{}{}; return enqueueID(tx, "abandoned") })
	}()
	waitQueued(t, db, 1)
	cancel()
	select {
	case err := <-abandoned:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned update: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("abandoned update did not return while the writer was held")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The queue is drained and the writer free: a new update runs.
	if err := db.Update(context.Background(), func(tx *Tx) error { return enqueueID(tx, "after") }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Fatal("the abandoned update's body ran")
	default:
	}
	if ids := outboxIDs(t, db); ids["abandoned"] || !ids["after"] {
		t.Fatalf("stored %v", ids)
	}
}

// Many writers at once: every update is committed exactly once.
func TestConcurrentUpdatesAllCommitted(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	const writers, each = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- db.Update(context.Background(), func(tx *Tx) error { return enqueueID(tx, fmt.Sprint(w, "-", i)) })
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(outboxIDs(t, db)); got != writers*each {
		t.Fatalf("%d events stored, want %d", got, writers*each)
	}
}

// BenchmarkUpdateParallel is the shape of the API's durable creates: many
// callers, one small transaction each.
func BenchmarkUpdateParallel(b *testing.B) {
	db, _ := openTestDB(b, Options{})
	b.ReportAllocs()
	b.SetParallelism(32)
	var seq sync.Mutex
	n := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			seq.Lock()
			n++
			id := fmt.Sprint("e", n)
			seq.Unlock()
			if err := db.Update(context.Background(), func(tx *Tx) error { return enqueueID(tx, id) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
