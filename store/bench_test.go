package store

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"callpath/cdr"
)

// benchPrefill is how many records the database holds before a benchmark
// starts timing. The cost of an insert into an index keyed by a random value
// (Call-ID, Session-ID) grows with the index, so an empty database would
// flatter every schema; 200,000 is a few minutes of traffic at 1,500 calls/s.
const benchPrefill = 200_000

// benchRate is the call rate of the paced benchmark, the rate at which the
// gateway's CPU profile was taken.
const benchRate = 1500

func TestMain(m *testing.M) {
	code := m.Run()
	if benchTemplate.dir != "" {
		_ = os.RemoveAll(benchTemplate.dir)
	}
	os.Exit(code)
}

// benchTemplate is a database holding benchPrefill records, built once per
// test binary and copied for every benchmark run.
var benchTemplate struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func benchTemplatePath(b *testing.B) string {
	b.Helper()
	t := &benchTemplate
	t.once.Do(func() {
		t.dir, t.err = os.MkdirTemp("", "callpath-store-bench-")
		if t.err != nil {
			return
		}
		t.path = filepath.Join(t.dir, "template.db")
		log, _ := quietLogger()
		db, err := Open(context.Background(), t.path, Options{Logger: log})
		if err != nil {
			t.err = err
			return
		}
		const chunk = 10_000
		recs := make([]cdr.Record, chunk)
		for i := 0; i < benchPrefill && t.err == nil; i += chunk {
			for j := range recs {
				recs[j] = benchRecord(i + j)
			}
			t.err = db.InsertCDRs(context.Background(), recs)
		}
		// Close checkpoints, so the main file alone is the whole database.
		if err := db.Close(); t.err == nil {
			t.err = err
		}
	})
	if t.err != nil {
		b.Fatalf("build benchmark template: %v", t.err)
	}
	return t.path
}

// openBenchDB opens a private copy of the template.
func openBenchDB(b *testing.B) *DB {
	b.Helper()
	src := benchTemplatePath(b)
	dst := filepath.Join(b.TempDir(), "callpath.db")
	if err := copyFile(dst, src); err != nil {
		b.Fatal(err)
	}
	db := openAt(b, dst, Options{})
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Errorf("close db: %v", err)
		}
	})
	return db
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// splitmix64 scrambles i into a well-spread 64-bit value.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// randomTag returns n characters from the alphabet of sip.GenerateTagN,
// derived from seed.
func randomTag(seed uint64, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	buf := make([]byte, n)
	x := seed
	for i := range buf {
		if i%8 == 0 {
			x = splitmix64(x + uint64(i))
		}
		buf[i] = alphabet[x%uint64(len(alphabet))]
		x /= uint64(len(alphabet))
	}
	return string(buf)
}

// benchRecord builds the i-th record of a realistic stream. Records arrive
// when calls end, 1/benchRate s apart, so ended_at grows with i but
// started_at does not: a call started up to an hour earlier, which puts
// inserts into the started_at index all over its recent end. Three calls in
// ten are never answered (up to 30 s of ringing); the others ring up to 10 s
// and talk for an exponentially distributed time, mean 2 minutes, at most an
// hour. Every identifier is random, as a UA's Call-ID, RFC 7989 Session-ID
// and callpath's own outgoing Call-ID are.
func benchRecord(i int) cdr.Record {
	u := uint64(i)
	end := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second / benchRate)
	h := splitmix64(u*5 + 5)
	var start, answered time.Time
	code := 200
	if h%10 < 3 {
		start = end.Add(-time.Duration(h>>8%30_000) * time.Millisecond)
		code = 487
	} else {
		ring := time.Duration(h>>8%10_000) * time.Millisecond
		uniform := (float64(splitmix64(u*5+6)>>11) + 0.5) / (1 << 53)
		talk := min(time.Duration(-math.Log(uniform)*120*float64(time.Second)), time.Hour)
		answered = end.Add(-talk)
		start = answered.Add(-ring)
	}
	incoming := randomTag(u*5+1, 20) + "@10.20." + strconv.Itoa(i%200) + ".7"
	return cdr.Record{
		CallID:    incoming,
		SessionID: fmt.Sprintf("%016x%016x", splitmix64(u*5+2), splitmix64(u*5+3)),
		From:      "+4930" + strconv.Itoa(1_000_000+i%9_000_000),
		To:        "+4940" + strconv.Itoa(2_000_000+i%7_000_000),
		Legs: []cdr.Leg{
			{Index: 1, CallID: incoming, Peer: "sip:+4930" + strconv.Itoa(1_000_000+i%9_000_000) + "@10.20.0.7:5060"},
			{Index: 2, CallID: randomTag(u*5+4, 24), Peer: "sip:+4940" + strconv.Itoa(2_000_000+i%7_000_000) + "@carrier.example:5060"},
		},
		StartedAt:  start,
		AnsweredAt: answered,
		EndedAt:    end,
		FinalCode:  code,
		HangupBy:   cdr.HangupCaller,
		Reason:     "bye",
	}
}

// processUsage is what the process has consumed so far: CPU time (user and
// system) and bytes handed to write system calls.
type processUsage struct {
	cpu    time.Duration
	wbytes int64 // -1 when unknown
}

func readUsage() processUsage {
	u := processUsage{cpu: processCPUTime(), wbytes: -1}
	// /proc/self/io's wchar counts every byte passed to write and pwrite:
	// WAL frames and checkpoints, whether or not they reach the disk.
	if data, err := os.ReadFile("/proc/self/io"); err == nil {
		var rchar, wchar int64
		if _, err := fmt.Sscanf(string(data), "rchar: %d\nwchar: %d", &rchar, &wchar); err == nil {
			u.wbytes = wchar
		}
	}
	return u
}

// BenchmarkCDRWriter measures the writer on a database that already holds
// benchPrefill records. Besides ns/op (wall time per record) it reports
// cpu-ns/op, the process's CPU time per record (user and system, all
// goroutines, including the garbage collector), which is what the gateway
// pays, and wbytes/op, the bytes written per record.
//
//   - flood: b.N records offered at once; the writer runs flat out with
//     full batches. ns/op is its throughput limit.
//   - paced: records offered at benchRate per second, as in production, so
//     batches are as large as the flush interval makes them. Wall time is
//     set by the pacing; cpu-ns/op is the figure that matters.
func BenchmarkCDRWriter(b *testing.B) {
	b.Run("flood", func(b *testing.B) { benchWriter(b, false) })
	b.Run("paced", func(b *testing.B) { benchWriter(b, true) })
}

func benchWriter(b *testing.B, paced bool) {
	db := openBenchDB(b)
	log, _ := quietLogger()
	// A queue as long as the run means nothing is dropped, so the rate below
	// is what reaches the disk, not what the queue swallowed.
	w := NewCDRWriter(db, CDRWriterOptions{QueueSize: max(b.N, DefaultCDRQueueSize), Logger: log})
	ctx := context.Background()
	// Distinct records, built before the clock starts, that continue the
	// prefilled stream.
	recs := make([]cdr.Record, b.N)
	for i := range recs {
		recs[i] = benchRecord(benchPrefill + i)
	}

	b.ReportAllocs()
	b.ResetTimer()
	before := readUsage()
	if paced {
		const tick = 10 * time.Millisecond
		const perTick = benchRate * int(tick) / int(time.Second)
		t := time.NewTicker(tick)
		for i := 0; i < b.N; i += perTick {
			for j := i; j < min(i+perTick, b.N); j++ {
				w.RecordCall(ctx, recs[j])
			}
			<-t.C
		}
		t.Stop()
	} else {
		for i := range b.N {
			w.RecordCall(ctx, recs[i])
		}
	}
	// Draining is part of the cost: the clock stops when the last record is
	// committed.
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	after := readUsage()
	b.StopTimer()

	if w.Written() != uint64(b.N) {
		b.Fatalf("written %d of %d (dropped %d, failed %d)", w.Written(), b.N, w.Dropped(), w.Failed())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if cpu := after.cpu - before.cpu; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	if before.wbytes >= 0 && after.wbytes >= 0 {
		b.ReportMetric(float64(after.wbytes-before.wbytes)/float64(b.N), "wbytes/op")
	}
}

// BenchmarkListCDRs measures the lookups an operator makes on a database of
// benchPrefill records: the newest calls, a call by its incoming Call-ID, by
// Session-ID, and by an outgoing leg's Call-ID, which scans the table.
func BenchmarkListCDRs(b *testing.B) {
	db := openBenchDB(b)
	ctx := context.Background()
	probe := benchRecord(benchPrefill / 2)
	for _, bc := range []struct {
		name   string
		filter CDRFilter
		want   int
	}{
		{"newest", CDRFilter{}, DefaultCDRListLimit},
		{"incoming-call-id", CDRFilter{CallID: probe.CallID}, 1},
		{"session-id", CDRFilter{SessionID: probe.SessionID}, 1},
		{"outgoing-call-id", CDRFilter{CallID: probe.Legs[1].CallID}, 1},
		{"outgoing-call-id-and-session", CDRFilter{CallID: probe.Legs[1].CallID, SessionID: probe.SessionID}, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := db.ListCDRs(ctx, bc.filter)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != bc.want {
					b.Fatalf("%d records, want %d", len(got), bc.want)
				}
			}
		})
	}
}
