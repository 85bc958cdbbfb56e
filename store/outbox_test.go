package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A sink's events come out one at a time in the order they were enqueued:
// while its first waits for a retry, the rest of that sink wait too, other
// sinks do not. Delivered events go, buried ones stay as dead letters, and
// a failed transaction enqueues nothing.
func TestOutboxOrderRetryAndDeadLetters(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ev := func(id, sink string) OutboxEvent {
		return OutboxEvent{EventID: id, SubscriptionID: "sub-" + sink, Sink: sink, SinkToken: "tok", Type: "t",
			Body: []byte(`{"id":"` + id + `"}`), CreatedAt: now}
	}
	if err := db.Update(ctx, func(tx *Tx) error {
		for _, e := range []OutboxEvent{ev("a1", "https://a"), ev("b1", "https://b"), ev("a2", "https://a")} {
			if err := tx.Enqueue(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("rolled back")
	if err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.Enqueue(ev("c1", "https://c")); err != nil {
			return err
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatalf("update: %v", err)
	}
	ids := func(evs []OutboxEvent) (out []string) {
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	due, err := db.DueEvents(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(due); len(got) != 2 || got[0] != "a1" && got[1] != "a1" {
		t.Fatalf("due %v, want the head of each sink (a1, b1)", got)
	}
	a1 := due[0]
	if a1.EventID != "a1" {
		a1 = due[1]
	}
	if err := db.Retry(ctx, a1.Seq, 1, now.Add(time.Minute), "503"); err != nil {
		t.Fatal(err)
	}
	due, _ = db.DueEvents(ctx, now, 10)
	if got := ids(due); len(got) != 1 || got[0] != "b1" {
		t.Fatalf("due %v: a2 must wait behind a1's retry", got)
	}
	if next, _ := db.NextDue(ctx); !next.Equal(now) {
		t.Fatalf("next due %v", next)
	}
	if err := db.Delivered(ctx, due[0].Seq); err != nil {
		t.Fatal(err)
	}
	due, _ = db.DueEvents(ctx, now.Add(time.Minute), 10)
	if got := ids(due); len(got) != 1 || got[0] != "a1" || due[0].Attempts != 1 || due[0].LastError != "503" {
		t.Fatalf("due after the retry time %v", due)
	}
	if err := db.Bury(ctx, due[0].Seq, 5, "retries exhausted"); err != nil {
		t.Fatal(err)
	}
	due, _ = db.DueEvents(ctx, now.Add(time.Minute), 10)
	if got := ids(due); len(got) != 1 || got[0] != "a2" {
		t.Fatalf("due after burying a1: %v", got)
	}
	dead, _ := db.DeadLetters(ctx, 10)
	if len(dead) != 1 || dead[0].EventID != "a1" || !dead[0].Dead || dead[0].LastError != "retries exhausted" {
		t.Fatalf("dead letters %+v", dead)
	}
	if n, err := db.DropSubscriptionEvents(ctx, "sub-https://a", "sink gone (410)"); err != nil || n != 1 {
		t.Fatalf("drop: %d, %v", n, err)
	}
	live, deadN, err := db.OutboxDepth(ctx)
	if err != nil || live != 0 || deadN != 2 {
		t.Fatalf("depth live %d dead %d, %v", live, deadN, err)
	}
}
