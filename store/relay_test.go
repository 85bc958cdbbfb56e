package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func tokenHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func attach(t *testing.T, db *DB, a RelayAttach) RelayBinding {
	t.Helper()
	b, _, err := db.AttachRelayBinding(context.Background(), a)
	if err != nil {
		t.Fatalf("attach %+v: %v", a, err)
	}
	return b
}

// An app gets the same binding back for the same owner and device, every
// connect adds a sink token that stays valid until it expires, the oldest
// go beyond KeepTokens, and a token only opens its own binding.
func TestRelayBindingAttachAndSinkTokens(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a := RelayAttach{Owner: "+4790000001", DeviceID: "dev-1", NewID: "b1", TokenHash: tokenHash("t1"),
		TokenExpires: now.Add(time.Hour), KeepTokens: 2, Now: now}
	b, done, err := db.AttachRelayBinding(ctx, a)
	if err != nil || !done.Created || b.ID != "b1" {
		t.Fatalf("first attach: %+v %+v err=%v", b, done, err)
	}
	a.NewID, a.TokenHash, a.Now = "b-other", tokenHash("t2"), now.Add(time.Minute)
	a.TokenExpires = now.Add(2 * time.Hour)
	b, done, err = db.AttachRelayBinding(ctx, a)
	if err != nil || done.Created || len(done.Trimmed) != 0 || b.ID != "b1" || !b.LastSeenAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("second attach: %+v %+v err=%v, want b1 again, seen now", b, done, err)
	}
	// By binding id (a relay-issued token), a third token: t1, the
	// oldest, goes, and its hash is reported.
	_, done, err = db.AttachRelayBinding(ctx, RelayAttach{BindingID: "b1", TokenHash: tokenHash("t3"), TokenExpires: now.Add(3 * time.Hour), KeepTokens: 2, Now: now})
	if err != nil || len(done.Trimmed) != 1 || string(done.Trimmed[0]) != string(tokenHash("t1")) {
		t.Fatalf("third attach: %+v %v, want t1 trimmed", done, err)
	}
	other := attach(t, db, RelayAttach{Owner: "+4790000001", DeviceID: "dev-2", NewID: "b2",
		TokenHash: tokenHash("u1"), TokenExpires: now.Add(time.Hour), Now: now})

	for _, c := range []struct {
		binding, token string
		at             time.Time
		want           error
	}{
		{"b1", "t2", now, nil},
		{"b1", "t3", now, nil},
		{"b1", "t1", now, ErrRelayTokenInvalid},                       // trimmed (KeepTokens 2)
		{"b1", "t2", now.Add(2 * time.Hour), ErrRelayTokenInvalid},    // expired
		{"b1", "u1", now, ErrRelayTokenInvalid},                       // another binding's
		{other.ID, "u1", now, nil},                                    // that one's own
		{"b1", "nonsense", now, ErrRelayTokenInvalid},                 // unknown
		{"no-such-binding", "t2", now, ErrRelayBindingNotFound},       // gone
		{"no-such-binding", "nonsense", now, ErrRelayBindingNotFound}, // gone, whatever the token
	} {
		exp, err := db.CheckRelaySinkToken(ctx, c.binding, tokenHash(c.token), c.at)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) || (err == nil) == exp.IsZero() {
			t.Errorf("token %s for %s at %s: %v, want %v", c.token, c.binding, c.at.Format(time.TimeOnly), err, c.want)
		}
	}
	if _, _, err := db.AttachRelayBinding(ctx, RelayAttach{BindingID: "gone", Now: now}); !errors.Is(err, ErrRelayBindingNotFound) {
		t.Fatalf("attach by unknown id: %v", err)
	}
	// The owner holds two bindings; with a limit of two a third is refused.
	_, _, err = db.AttachRelayBinding(ctx, RelayAttach{Owner: "+4790000001", DeviceID: "dev-3", NewID: "b3", MaxPerOwner: 2, Now: now})
	if !errors.Is(err, ErrRelayBindingLimit) {
		t.Fatalf("third binding over the limit: %v", err)
	}
	if _, err := db.RelayBinding(ctx, "b3"); !errors.Is(err, ErrRelayBindingNotFound) {
		t.Fatalf("refused binding exists: %v", err)
	}
	// ... but an existing one still attaches.
	attach(t, db, RelayAttach{Owner: "+4790000001", DeviceID: "dev-2", MaxPerOwner: 2, Now: now})
}

// Events come back in seq order after any seq, a retried event id is
// queued once, and acknowledgements by seq (cumulative) and by id remove
// only that binding's events.
func TestRelayQueueOrderAckAndDuplicates(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	attach(t, db, RelayAttach{Owner: "o", DeviceID: "d1", NewID: "b1", Now: now})
	attach(t, db, RelayAttach{Owner: "o", DeviceID: "d2", NewID: "b2", Now: now})
	var seqs []int64
	for i, id := range []string{"e1", "e2", "e3", "e4"} {
		r, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b1", EventID: id, Body: []byte(`{"id":"` + id + `"}`),
			CreatedAt: now.Add(time.Duration(i) * time.Second)}, RelayQueueLimits{MaxEvents: 10})
		if err != nil || r.Duplicate || r.Seq == 0 {
			t.Fatalf("append %s: %+v %v", id, r, err)
		}
		if len(seqs) > 0 && r.Seq <= seqs[len(seqs)-1] {
			t.Fatalf("seq %d after %d", r.Seq, seqs[len(seqs)-1])
		}
		seqs = append(seqs, r.Seq)
	}
	if _, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b2", EventID: "e1", Body: []byte(`{}`), CreatedAt: now}, RelayQueueLimits{}); err != nil {
		t.Fatalf("same id, other binding: %v", err)
	}
	r, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b1", EventID: "e2", Body: []byte(`{"changed":true}`), CreatedAt: now}, RelayQueueLimits{})
	if err != nil || !r.Duplicate {
		t.Fatalf("retried e2: %+v %v, want a duplicate", r, err)
	}
	if _, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "nope", EventID: "x", Body: []byte(`{}`), CreatedAt: now}, RelayQueueLimits{}); !errors.Is(err, ErrRelayBindingNotFound) {
		t.Fatalf("event for an unknown binding: %v", err)
	}

	ids := func(after int64) string {
		evs, err := db.RelayEvents(ctx, "b1", after, 100)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, e := range evs {
			s += e.EventID + " "
		}
		return s
	}
	if got := ids(0); got != "e1 e2 e3 e4 " {
		t.Fatalf("queue %q", got)
	}
	if got := ids(seqs[1]); got != "e3 e4 " {
		t.Fatalf("after e2: %q", got)
	}
	evs, _ := db.RelayEvents(ctx, "b1", 0, 1)
	if len(evs) != 1 || string(evs[0].Body) != `{"id":"e1"}` || !evs[0].CreatedAt.Equal(now) {
		t.Fatalf("first event %+v", evs)
	}
	n, err := db.AckRelayEvents(ctx, []RelayAck{{BindingID: "b1", UpToSeq: seqs[1]}, {BindingID: "b1", EventID: "e4"}, {BindingID: "b1", EventID: "unknown"}})
	if err != nil || n != 3 {
		t.Fatalf("acks removed %d, %v; want 3", n, err)
	}
	if got := ids(0); got != "e3 " {
		t.Fatalf("after acks: %q", got)
	}
	if evs, _ := db.RelayEvents(ctx, "b2", 0, 10); len(evs) != 1 {
		t.Fatalf("b2 lost its event: %+v", evs)
	}
	if b, e, err := db.RelayDepth(ctx); err != nil || b != 2 || e != 2 {
		t.Fatalf("depth %d bindings %d events %v", b, e, err)
	}
}

// A full queue refuses the next event (and keeps nothing of it), or drops
// its oldest and counts it for the app, as the limits say.
func TestRelayQueueFullPolicies(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	attach(t, db, RelayAttach{Owner: "o", DeviceID: "d", NewID: "b", Now: now})
	add := func(id string, l RelayQueueLimits) (RelayAppended, error) {
		return db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b", EventID: id, Body: []byte(`{}`), CreatedAt: now}, l)
	}
	reject := RelayQueueLimits{MaxEvents: 2}
	for _, id := range []string{"e1", "e2"} {
		if _, err := add(id, reject); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := add("e3", reject); !errors.Is(err, ErrRelayQueueFull) {
		t.Fatalf("third event: %v, want ErrRelayQueueFull", err)
	}
	if r, err := add("e2", reject); err != nil || !r.Duplicate {
		t.Fatalf("a retry of a queued event in a full queue: %+v %v, want a duplicate", r, err)
	}
	r, err := add("e3", RelayQueueLimits{MaxEvents: 2, DropOldest: true})
	if err != nil || r.Dropped != 1 {
		t.Fatalf("drop oldest: %+v %v", r, err)
	}
	evs, _ := db.RelayEvents(ctx, "b", 0, 10)
	if len(evs) != 2 || evs[0].EventID != "e2" || evs[1].EventID != "e3" {
		t.Fatalf("queue after drop: %+v", evs)
	}
	b, _ := db.RelayBinding(ctx, "b")
	if b.ExpiredUnreported != 1 {
		t.Fatalf("expired unreported %d, want 1", b.ExpiredUnreported)
	}
	if err := db.ReportedRelayExpired(ctx, "b", 5); err != nil {
		t.Fatal(err)
	}
	if b, _ := db.RelayBinding(ctx, "b"); b.ExpiredUnreported != 0 {
		t.Fatalf("expired unreported after report %d", b.ExpiredUnreported)
	}
}

// Old events expire (counted per binding), idle bindings go with their
// events and tokens, expired tokens are purged, and what is queued
// survives closing and reopening the database.
func TestRelayExpiryIdleBindingsAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "callpath.db")
	db := openAt(t, path, Options{})
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	attach(t, db, RelayAttach{Owner: "o", DeviceID: "d1", NewID: "b1", TokenHash: tokenHash("t1"), TokenExpires: now.Add(time.Hour), Now: now})
	attach(t, db, RelayAttach{Owner: "o", DeviceID: "d2", NewID: "b2", TokenHash: tokenHash("t2"), TokenExpires: now.Add(time.Minute), Now: now.Add(time.Hour)})
	for i := range 6 {
		binding := []string{"b1", "b2"}[i%2]
		if _, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: binding, EventID: fmt.Sprint("e", i), Body: []byte(`{}`),
			CreatedAt: now.Add(time.Duration(i) * time.Minute)}, RelayQueueLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	lost, err := db.ExpireRelayEvents(ctx, now.Add(3*time.Minute), 100)
	if err != nil || lost["b1"] != 2 || lost["b2"] != 1 {
		t.Fatalf("expired %v %v, want b1:2 b2:1", lost, err)
	}
	if b, _ := db.RelayBinding(ctx, "b1"); b.ExpiredUnreported != 2 {
		t.Fatalf("b1 expired unreported %d", b.ExpiredUnreported)
	}
	// A limit of one takes one at a time: e3, the oldest left.
	if lost, _ := db.ExpireRelayEvents(ctx, now.Add(time.Hour), 1); lost["b2"] != 1 || len(lost) != 1 {
		t.Fatalf("limited expiry: %v", lost)
	}

	// Reopen: the queue and the bindings are as they were.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{})
	t.Cleanup(func() { _ = db.Close() })
	if evs, _ := db.RelayEvents(ctx, "b2", 0, 10); len(evs) != 1 || evs[0].EventID != "e5" {
		t.Fatalf("b2 after reopen: %+v", evs)
	}
	idle, err := db.IdleRelayBindings(ctx, now.Add(time.Minute), 10)
	if err != nil || len(idle) != 1 || idle[0] != "b1" {
		t.Fatalf("idle %v %v, want b1", idle, err)
	}
	if n, err := db.DeleteRelayBindings(ctx, idle); err != nil || n != 1 {
		t.Fatalf("delete %d %v", n, err)
	}
	if _, err := db.CheckRelaySinkToken(ctx, "b1", tokenHash("t1"), now); !errors.Is(err, ErrRelayBindingNotFound) {
		t.Fatalf("token of a deleted binding: %v", err)
	}
	if _, err := db.AppendRelayEvent(ctx, RelayEvent{BindingID: "b1", EventID: "late", Body: []byte(`{}`), CreatedAt: now}, RelayQueueLimits{}); !errors.Is(err, ErrRelayBindingNotFound) {
		t.Fatalf("event for a deleted binding: %v", err)
	}
	if err := db.TouchRelayBindings(ctx, []string{"b2"}, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if idle, _ := db.IdleRelayBindings(ctx, now.Add(90*time.Minute), 10); len(idle) != 0 {
		t.Fatalf("touched binding idle: %v", idle)
	}
	if n, err := db.PurgeRelaySinkTokens(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("purged %d %v, want t2", n, err)
	}
	if b, e, _ := db.RelayDepth(ctx); b != 1 || e != 1 {
		t.Fatalf("depth %d %d", b, e)
	}
}
