package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// A log whose last commit came after the last checkpoint is not started
// over by the next write transaction; restartLog copies the rest while no
// commit can happen, and the next write starts the log from the beginning.
func TestRestartLogStartsTheLogOver(t *testing.T) {
	for _, restart := range []bool{false, true} {
		db, _ := openTestDB(t, Options{})
		ctx := context.Background()
		now := time.Now()
		if _, _, err := db.AttachRelayBinding(ctx, RelayAttach{Owner: "o", DeviceID: "d", NewID: "b", Now: now}); err != nil {
			t.Fatal(err)
		}
		add := func(id string) {
			t.Helper()
			if _, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b", EventID: id, Body: make([]byte, 8192), CreatedAt: now}, RelayQueueLimits{}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 50 {
			add(fmt.Sprint("a", i))
		}
		// A checkpoint that ends while a write transaction is open, as
		// happens under load: the log is copied up to before that
		// transaction, which commits after it, so the next write finds
		// the log not fully copied and appends to it.
		if err := db.Update(ctx, func(tx *Tx) error {
			if _, err := tx.exec(`INSERT INTO relay_event (binding_id, event_id, body, created_at) VALUES ('b', 'x', zeroblob(8192), '')`); err != nil {
				return err
			}
			_, _, err := db.Checkpoint(ctx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if restart {
			if err := db.restartLog(ctx); err != nil {
				t.Fatal(err)
			}
		}
		add("next")
		pages, _, err := db.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if restart && pages >= 100 {
			t.Fatalf("after restartLog the next write should start the log over; it holds %d pages", pages)
		}
		if !restart && pages < 100 {
			t.Fatalf("without restartLog the log should have kept its pages; it holds %d", pages)
		}
	}
}

// Under a steady stream of commits from several writers, the background
// checkpoints never fail a write and the log stays below the writer's own
// checkpoint threshold.
func TestBackgroundCheckpointsUnderLoad(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now()
	if _, _, err := db.AttachRelayBinding(ctx, RelayAttach{Owner: "o", DeviceID: "d", NewID: "b", Now: now}); err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	writeErr := make(chan error, 1)
	// Several writers, so that a commit is always in flight (group
	// commit), as under load: the log is never fully copied between two.
	for w := range 8 {
		go func() {
			body := make([]byte, 2048)
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b", EventID: fmt.Sprint(w, "-", i), Body: body, CreatedAt: now},
					RelayQueueLimits{}); err != nil && ctx.Err() == nil {
					select {
					case writeErr <- err:
					default:
					}
					return
				}
				writes.Add(1)
			}
		}()
	}
	const restartAt = 200
	go db.RunCheckpoints(ctx, 2*time.Millisecond, restartAt, func(err error) { t.Errorf("checkpoint: %v", err) })

	// The log passes restartAt, then is started over: a later checkpoint
	// finds it short again, while writes go on.
	longest, restarts := 0, 0
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for restarts < 3 {
		select {
		case err := <-writeErr:
			t.Fatalf("write failed: %v", err)
		case <-deadline.C:
			t.Fatalf("%d restarts after 20 s (longest log %d pages, %d writes)", restarts, longest, writes.Load())
		case <-tick.C:
		}
		pages, _, err := db.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pages >= restartAt {
			longest = max(longest, pages)
		} else if longest > 0 && pages < restartAt/2 {
			restarts++
			longest = 0
		}
	}
	if longest >= walCheckpointPages {
		t.Fatalf("the log reached %d pages", longest)
	}
}
