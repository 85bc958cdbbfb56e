package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/registry"
	"callpath/store"
)

// clock is a settable time source, so that expiry shows without waiting.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// openStore opens a real SQLite file in the test's directory.
func openStore(t *testing.T, path string) *store.DB {
	t.Helper()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	db, err := store.Open(context.Background(), path, store.Options{Logger: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newRegistry(t *testing.T, db *store.DB, c *clock) *registry.Registry {
	t.Helper()
	r, err := registry.New(context.Background(), registry.Config{TTL: time.Hour}, db, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	tasA   = registry.Principal{Subject: "client-a"}
	tasB   = registry.Principal{Subject: "client-b"}
	user   = registry.Principal{Subject: "user-1", PhoneNumber: "+4790000001"}
	sample = registry.Registration{PhoneNumber: "+4790000001", RouteType: registry.RouteLoop, SIPURI: "sips:TAS.example.net:5061", MOPrefix: "00"}
)

func TestUpsertValidation(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, openStore(t, filepath.Join(t.TempDir(), "r.db")), c)
	ctx := context.Background()
	n := 0
	for name, tc := range map[string]struct {
		p    registry.Principal
		edit func(*registry.Registration)
		want string // "forbidden", "rejected" or "" (accepted)
	}{
		"client token with number":   {tasA, func(*registry.Registration) {}, ""},
		"client token without":       {tasA, func(r *registry.Registration) { r.PhoneNumber = "" }, "rejected"},
		"user token, own number":     {user, func(*registry.Registration) {}, ""},
		"user token, number omitted": {user, func(r *registry.Registration) { r.PhoneNumber = "" }, ""},
		"user token, other number":   {user, func(r *registry.Registration) { r.PhoneNumber = "+4790000002" }, "forbidden"},
		"not E.164":                  {tasA, func(r *registry.Registration) { r.PhoneNumber = "90000001" }, "rejected"},
		"plain sip":                  {tasA, func(r *registry.Registration) { r.SIPURI = "sip:tas.example.net" }, "rejected"},
		"unparseable uri":            {tasA, func(r *registry.Registration) { r.SIPURI = "tas example" }, "rejected"},
		"unspecified route type":     {tasA, func(r *registry.Registration) { r.RouteType = registry.RouteUnspecified }, "rejected"},
		"unknown route type":         {tasA, func(r *registry.Registration) { r.RouteType = 42 }, "rejected"},
		"bad prefix":                 {tasA, func(r *registry.Registration) { r.MTPrefix = "0x" }, "rejected"},
	} {
		t.Run(name, func(t *testing.T) {
			reg := sample
			n++
			reg.PhoneNumber = fmt.Sprintf("+47910000%02d", n) // a number per case
			if name == "user token, own number" || name == "user token, number omitted" || name == "user token, other number" {
				reg.PhoneNumber = user.PhoneNumber
			}
			tc.edit(&reg)
			got, err := r.Upsert(ctx, tc.p, reg)
			switch tc.want {
			case "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got.SIPURI != "sips:tas.example.net:5061" || !got.ExpiresAt.Equal(c.Now().Add(time.Hour)) || got.Owner != tc.p.Subject {
					t.Fatalf("stored %+v", got)
				}
			case "forbidden":
				if !errors.Is(err, registry.ErrForbidden) {
					t.Fatalf("err %v, want ErrForbidden", err)
				}
			case "rejected":
				if !registry.IsRejection(err) {
					t.Fatalf("err %v, want a Rejection", err)
				}
			}
		})
	}
}

// Upsert refreshes; another client cannot take over or delete the number;
// delete needs the registered URI; expired registrations stop acting and
// are swept; everything survives a restart.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "r.db")
	r := newRegistry(t, openStore(t, path), c)

	if _, err := r.Upsert(ctx, tasA, sample); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Upsert(ctx, tasB, sample); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("another client's upsert: %v", err)
	}
	if err := r.Delete(ctx, tasB, sample); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("another client's delete: %v", err)
	}
	if _, err := r.Get(tasB, sample.PhoneNumber); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("another client sees the registration: %v", err)
	}
	wrong := sample
	wrong.SIPURI = "sips:other.example.net"
	if err := r.Delete(ctx, tasA, wrong); !registry.IsRejection(err) {
		t.Fatalf("delete with another sip_uri: %v", err)
	}

	c.Add(50 * time.Minute)
	if _, err := r.Upsert(ctx, tasA, sample); err != nil { // refresh
		t.Fatal(err)
	}
	c.Add(50 * time.Minute) // 100 min after the first upsert, 50 after the refresh
	if _, ok := r.Lookup(sample.PhoneNumber); !ok {
		t.Fatal("refreshed registration expired")
	}

	// A restart finds it.
	r2 := newRegistry(t, openStore(t, path), c)
	got, ok := r2.Lookup(sample.PhoneNumber)
	if !ok || got.RouteType != registry.RouteLoop || got.MOPrefix != "00" || got.Owner != "client-a" {
		t.Fatalf("after restart: %+v, %v", got, ok)
	}

	c.Add(11 * time.Minute) // past the refresh's hour
	if _, ok := r2.Lookup(sample.PhoneNumber); ok {
		t.Fatal("expired registration still acts")
	}
	if n, err := r2.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if r2.Len() != 0 {
		t.Fatalf("%d registrations left after sweep", r2.Len())
	}
	r3 := newRegistry(t, openStore(t, path), c)
	if r3.Len() != 0 {
		t.Fatalf("swept registration back after restart")
	}

	// Delete with the matching URI (any case) removes it.
	if _, err := r3.Upsert(ctx, tasA, sample); err != nil {
		t.Fatal(err)
	}
	del := sample
	del.SIPURI = "sips:tas.example.NET:5061"
	if err := r3.Delete(ctx, tasA, del); err != nil {
		t.Fatal(err)
	}
	if _, ok := r3.Lookup(sample.PhoneNumber); ok {
		t.Fatal("deleted registration still acts")
	}
	if err := r3.Delete(ctx, tasA, del); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if got := r3.List(tasA); len(got) != 0 {
		t.Fatalf("list after delete: %v", got)
	}
}
