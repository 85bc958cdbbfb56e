package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A subscription round-trips, counts its events up to its maximum, ends
// once (a second end path changes nothing), shows up as due when it or its
// sink token expires, and is purged after its retention.
func TestSubscriptionLifecycle(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	yes := true
	s := Subscription{ID: "s1", OwnerNumber: "+4799990000", OwnerSubject: "alice", Types: []string{"t.a"},
		Sink: "https://sink.example/x", SinkToken: "tok", SinkTokenExp: now.Add(2 * time.Hour),
		RegistrationID: "r1", DeviceID: "d1", MaxEvents: 2, InitialEvent: &yes, Status: SubscriptionActive,
		StartsAt: now, ExpiresAt: now.Add(time.Hour)}
	other := Subscription{ID: "s2", OwnerNumber: "+4799990001", Types: []string{"t.a"}, Sink: "https://b",
		Status: SubscriptionActive, StartsAt: now, ExpiresAt: now.Add(3 * time.Hour)}
	if err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.PutSubscription(s); err != nil {
			return err
		}
		return tx.PutSubscription(other)
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Subscription(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Sink != s.Sink || !got.SinkTokenExp.Equal(s.SinkTokenExp) || got.InitialEvent == nil || !*got.InitialEvent ||
		len(got.Types) != 1 || got.MaxEvents != 2 || !got.RequestedExpireTime.IsZero() || !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("read back %+v", got)
	}
	if _, err := db.Subscription(ctx, "nope"); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if l, err := db.SubscriptionsByOwner(ctx, "+4799990000"); err != nil || len(l) != 1 || l[0].ID != "s1" {
		t.Fatalf("by owner: %v %v", l, err)
	}
	var counts []int
	if err := db.Update(ctx, func(tx *Tx) error {
		if n, err := tx.CountActiveSubscriptions("+4799990000", now); err != nil || n != 1 {
			t.Errorf("count active: %d %v", n, err)
		}
		act, err := tx.ActiveSubscriptions("+4799990000", "t.a", now)
		if err != nil || len(act) != 1 {
			t.Errorf("active: %v %v", act, err)
		}
		for range 3 {
			n, ok, err := tx.CountSubscriptionEvent("s1")
			if err != nil {
				return err
			}
			if ok {
				counts = append(counts, n)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts[1] != 2 {
		t.Fatalf("counts %v, want [1 2]", counts)
	}
	if err := db.Update(ctx, func(tx *Tx) error {
		if ok, err := tx.UpdateSubscription("s2", SubscriptionUpdate{ExpiresAt: now.Add(4 * time.Hour),
			SinkToken: "tok2", SinkTokenExp: now.Add(5 * time.Hour)}); err != nil || !ok {
			t.Errorf("extend: %v %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s2, err := db.Subscription(ctx, "s2"); err != nil || !s2.ExpiresAt.Equal(now.Add(4*time.Hour)) || s2.SinkToken != "tok2" {
		t.Fatalf("extended: %+v %v", s2, err)
	}
	due, err := db.DueSubscriptions(ctx, now.Add(time.Hour), now.Add(time.Hour), 10)
	if err != nil || len(due) != 1 || due[0].ID != "s1" {
		t.Fatalf("due at expiry: %v %v", due, err)
	}
	due, err = db.DueSubscriptions(ctx, now, now.Add(2*time.Hour), 10)
	if err != nil || len(due) != 1 || due[0].ID != "s1" {
		t.Fatalf("due by token: %v %v", due, err)
	}
	var ended []bool
	for range 2 {
		if err := db.Update(ctx, func(tx *Tx) error {
			ok, err := tx.EndSubscription("s1", SubscriptionDeleted, "SUBSCRIPTION_DELETED", now)
			ended = append(ended, ok)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !ended[0] || ended[1] {
		t.Fatalf("ended %v, want [true false]", ended)
	}
	got, _ = db.Subscription(ctx, "s1")
	if got.Status != SubscriptionDeleted || got.TerminationReason != "SUBSCRIPTION_DELETED" || !got.EndedAt.Equal(now) {
		t.Fatalf("after end %+v", got)
	}
	if n, err := db.PurgeSubscriptions(ctx, now.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := db.Subscription(ctx, "s2"); err != nil {
		t.Fatalf("active one purged: %v", err)
	}
}
