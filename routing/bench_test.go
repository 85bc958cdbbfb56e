package routing_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/registry"
	"callpath/routing"
	"callpath/store"
)

// BenchmarkBreakoutPlan1M plans calls with one million registrations in the
// store (SQLite, loaded into the registry at start as the gateway does), for
// a caller and callee that both have one (the most lookups) and for numbers
// without (the common case). It also reports how long the load took and the
// heap the index holds.
func BenchmarkBreakoutPlan1M(b *testing.B) {
	const n = 1_000_000
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(b.TempDir(), "db"), store.Options{Logger: logrus.NewEntry(quiet)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	types := []registry.RouteType{registry.RouteLoop, registry.RouteFork, registry.RouteFallback, registry.RouteLoopMO, registry.RouteLoopMT, registry.RouteIngress}
	batch := make([]registry.Registration, 0, 50_000)
	for i := 0; i < n; i++ {
		batch = append(batch, registry.Registration{
			PhoneNumber: fmt.Sprintf("+47%08d", i), RouteType: types[i%len(types)],
			SIPURI: fmt.Sprintf("sips:tas%d.example.net", i%1000), MOPrefix: "00", Owner: fmt.Sprintf("client-%d", i%100),
			UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
		})
		if len(batch) == cap(batch) {
			if err := db.PutRegistrations(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	reg, err := registry.New(ctx, registry.Config{TTL: time.Hour}, db, nil)
	if err != nil {
		b.Fatal(err)
	}
	load := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if reg.Len() != n {
		b.Fatalf("loaded %d registrations", reg.Len())
	}
	planner := &routing.Breakout{Destinations: routing.NewStaticTable(nil, "sip:core.example.net"), Registrations: reg, FallbackTimeout: 30 * time.Second}

	for _, tc := range []struct {
		name     string
		from, to string
	}{
		{"both registered", "+4700000006", "+4700000013"}, // FORK caller, LOOP_MO callee
		{"none registered", "+4612345678", "+4612345679"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			call := routing.BreakoutCall{Call: routing.Call{From: tc.from, To: tc.to}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if p := planner.Plan(call); p.Action != routing.ActionForward {
					b.Fatal("rejected")
				}
			}
			b.ReportMetric(load.Seconds(), "load-s")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "index-B/reg")
		})
	}
}
