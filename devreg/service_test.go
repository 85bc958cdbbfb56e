package devreg_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"callpath/devreg"
	"callpath/store"
)

// recordingUpstream stands in for upstream.Accounts, whose registration
// against real registrars is tested in package upstream and against
// Kamailio in test/e2e; here only the calls matter.
type recordingUpstream struct {
	mu          sync.Mutex
	registered  map[string]bool
	activations []string
	deactivated []string
}

func (u *recordingUpstream) Activate(_ context.Context, number string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.activations = append(u.activations, number)
	return u.registered[number], nil
}

func (u *recordingUpstream) Deactivate(_ context.Context, number string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.deactivated = append(u.deactivated, number)
	return nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

const (
	alice  = "+4790000001"
	device = "0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11"
)

func newService(t *testing.T) (*devreg.Service, *store.DB, *clock, *recordingUpstream) {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	up := &recordingUpstream{registered: map[string]bool{alice: true}}
	s := &devreg.Service{
		Store: store.DeviceRegistrations{DB: db, Ended: func(tx *store.Tx, r devreg.Registration, reason string, at time.Time) error {
			return tx.Enqueue(store.OutboxEvent{EventID: r.ID + "-end", SubscriptionID: "sub", Sink: "https://sink.test",
				Type: "registration-ends", Body: []byte(reason), CreatedAt: at})
		}},
		Upstream: up,
		Policy:   devreg.Policy{DefaultTTL: time.Hour, MinTTL: time.Minute, MaxTTL: 24 * time.Hour},
		Now:      c.Now,
	}
	return s, db, c, up
}

func TestCreateRefreshDelete(t *testing.T) {
	s, _, c, up := newService(t)
	ctx := context.Background()
	r, err := s.Create(ctx, "app", alice, device, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.ExpiresAt.Equal(c.now.Add(time.Hour)) || !r.Upstream || !devreg.ValidDeviceID(r.ID) {
		t.Fatalf("created %+v", r)
	}
	for name, tc := range map[string]struct {
		device    string
		requested time.Time
		want      error
		expires   time.Time
	}{
		"capped at the maximum": {device, c.now.Add(48 * time.Hour), nil, c.now.Add(24 * time.Hour)},
		"as asked":              {device, c.now.Add(2 * time.Hour), nil, c.now.Add(2 * time.Hour)},
		"below the minimum":     {device, c.now.Add(30 * time.Second), devreg.ErrOutOfRange, time.Time{}},
		"not a UUID":            {"uuid", time.Time{}, devreg.ErrInvalidDevice, time.Time{}},
	} {
		got, err := s.Create(ctx, "app", alice, tc.device, tc.requested)
		if !errors.Is(err, tc.want) || (err == nil && !got.ExpiresAt.Equal(tc.expires)) {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	// The same device registering again replaced its registration.
	if _, err := s.Get(ctx, alice, r.ID); !errors.Is(err, devreg.ErrNotFound) {
		t.Fatalf("replaced registration still there: %v", err)
	}
	regs, _ := s.Store.OfNumber(ctx, alice)
	if len(regs) != 1 {
		t.Fatalf("%d registrations for one device", len(regs))
	}
	r = regs[0]
	if _, err := s.Get(ctx, "+4790000009", r.ID); !errors.Is(err, devreg.ErrNotFound) {
		t.Fatal("another number's registration was found")
	}

	c.now = c.now.Add(30 * time.Minute)
	refreshed, err := s.Refresh(ctx, alice, r.ID, time.Time{})
	if err != nil || !refreshed.ExpiresAt.Equal(c.now.Add(time.Hour)) {
		t.Fatalf("refresh from now: %+v, %v", refreshed, err)
	}
	if refreshed, err := s.Refresh(ctx, alice, r.ID, c.now.Add(time.Second)); err != nil || !refreshed.ExpiresAt.Equal(c.now.Add(time.Hour)) {
		t.Fatalf("refresh asking below the minimum gets the default: %+v, %v", refreshed, err)
	}
	if err := s.Delete(ctx, alice, r.ID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(up.deactivated, []string{alice}) {
		t.Fatalf("upstream deactivated %v, want the number once its last registration ended", up.deactivated)
	}
}

// Expiry and the network end registrations with a registration-ends event
// written in the same transaction; the number is un-registered upstream
// only when its last registration goes.
func TestSweepAndNetworkEnd(t *testing.T) {
	s, db, c, up := newService(t)
	woken := 0
	s.Ended = func() { woken++ }
	ctx := context.Background()
	other := "1d6a3c1e-0a1b-4c2d-8e3f-405162738495"
	short, _ := s.Create(ctx, "app", alice, device, c.now.Add(2*time.Minute))
	long, _ := s.Create(ctx, "app", alice, other, time.Time{})

	c.now = c.now.Add(3 * time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	due, _ := db.DueEvents(ctx, c.now, 10)
	if len(due) != 1 || due[0].EventID != short.ID+"-end" || string(due[0].Body) != devreg.ReasonExpired {
		t.Fatalf("events %+v", due)
	}
	if len(up.deactivated) != 0 {
		t.Fatal("un-registered while another device still needs the number")
	}
	_ = db.Delivered(ctx, due[0].Seq)

	if n, err := s.NetworkEnded(ctx, alice); err != nil || n != 1 {
		t.Fatalf("network end: %d, %v", n, err)
	}
	due, _ = db.DueEvents(ctx, c.now, 10)
	if len(due) != 1 || due[0].EventID != long.ID+"-end" || string(due[0].Body) != devreg.ReasonNetworkTerminated {
		t.Fatalf("events %+v", due)
	}
	if len(up.deactivated) != 0 {
		t.Fatal("un-registered a binding the network has already dropped")
	}
	if woken != 2 {
		t.Fatalf("Ended called %d times, want once per ended registration", woken)
	}
	if regs, _ := s.Store.OfNumber(ctx, alice); len(regs) != 0 {
		t.Fatalf("%d registrations left", len(regs))
	}
}

// The live-number index the call path reads follows every change, expires
// with the registrations, and is rebuilt from the store by a new service
// (a restart).
func TestHasDeviceFollowsRegistrations(t *testing.T) {
	s, db, c, _ := newService(t)
	ctx := context.Background()
	if s.HasDevice(alice) {
		t.Fatal("a device before any registration")
	}
	r, err := s.Create(ctx, "app", alice, device, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasDevice(alice) || !s.Live(ctx, alice, r.ID) || s.Live(ctx, "+4790000002", r.ID) {
		t.Fatal("the registration is not live")
	}
	// The same device registers again: the old one is replaced, not kept.
	r2, err := s.Create(ctx, "app", alice, device, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, alice, r2.ID); err != nil {
		t.Fatal(err)
	}
	if s.HasDevice(alice) {
		t.Fatal("a device after the only registration was deleted")
	}

	if _, err := s.Create(ctx, "app", alice, device, time.Time{}); err != nil {
		t.Fatal(err)
	}
	restarted := &devreg.Service{Store: store.DeviceRegistrations{DB: db}, Policy: s.Policy, Now: c.Now}
	if restarted.HasDevice(alice) {
		t.Fatal("an unloaded index knows the device")
	}
	if err := restarted.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if !restarted.HasDevice(alice) {
		t.Fatal("the index rebuilt from the store misses the device")
	}
	c.now = c.now.Add(2 * time.Hour)
	if restarted.HasDevice(alice) || s.HasDevice(alice) {
		t.Fatal("an expired registration still counts")
	}
}
