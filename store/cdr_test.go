package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"callpath/cdr"
)

// sampleRecord builds a distinct answered call with two legs.
func sampleRecord(i int) cdr.Record {
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return cdr.Record{
		CallID:    fmt.Sprintf("call-%d@caller.example", i),
		SessionID: fmt.Sprintf("%032x", i),
		From:      "+15550001",
		To:        "+15550002",
		Legs: []cdr.Leg{
			{Index: 1, CallID: fmt.Sprintf("call-%d@caller.example", i), Peer: "sip:+15550001@caller.example"},
			{Index: 2, CallID: fmt.Sprintf("out-%d@callpath", i), Peer: "sip:+15550002@carrier.example"},
		},
		StartedAt:  start,
		AnsweredAt: start.Add(2*time.Second + 123456789),
		EndedAt:    start.Add(65 * time.Second),
		FinalCode:  200,
		HangupBy:   cdr.HangupCaller,
		Reason:     "bye",
	}
}

func TestCDRRoundTrip(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	answered := sampleRecord(1)
	// A local zone and a monotonic reading must not survive the trip: the
	// store keeps UTC wall time only.
	answered.StartedAt = time.Now().In(time.FixedZone("CEST", 2*3600))
	answered.AnsweredAt = answered.StartedAt.Add(1500 * time.Millisecond)
	answered.EndedAt = answered.StartedAt.Add(90 * time.Second)

	unanswered := cdr.Record{
		CallID:    "never-answered@caller.example",
		SessionID: "ab",
		From:      "alice",
		To:        "bob",
		Legs:      []cdr.Leg{{Index: 1, CallID: "never-answered@caller.example", Peer: "sip:alice@caller.example"}},
		StartedAt: answered.StartedAt.Add(time.Second),
		EndedAt:   answered.StartedAt.Add(31 * time.Second),
		FinalCode: 486,
		HangupBy:  cdr.HangupCallee,
		Reason:    "486 Busy Here",
	}
	noLegs := sampleRecord(3)
	noLegs.Legs = nil
	noLegs.StartedAt = answered.StartedAt.Add(-time.Hour)

	if err := db.InsertCDRs(ctx, []cdr.Record{answered, unanswered, noLegs}); err != nil {
		t.Fatal(err)
	}

	got, err := db.ListCDRs(ctx, CDRFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []cdr.Record{unanswered, answered, noLegs} // newest first
	if len(got) != len(want) {
		t.Fatalf("ListCDRs returned %d records, want %d", len(got), len(want))
	}
	for i := range want {
		assertRecord(t, got[i], want[i])
	}
	if !got[0].AnsweredAt.IsZero() {
		t.Errorf("unanswered call came back answered at %v", got[0].AnsweredAt)
	}
	if got[0].Duration() != 0 {
		t.Errorf("unanswered call has duration %v", got[0].Duration())
	}

	var durMS int64
	if err := db.read.QueryRowContext(ctx, "SELECT duration_ms FROM cdr WHERE call_id = ?", answered.CallID).Scan(&durMS); err != nil {
		t.Fatal(err)
	}
	if want := answered.Duration().Milliseconds(); durMS != want {
		t.Errorf("duration_ms = %d, want %d", durMS, want)
	}
}

func TestListCDRsFilters(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	var recs []cdr.Record
	for i := range 10 {
		recs = append(recs, sampleRecord(i))
	}
	recs[7].SessionID = recs[3].SessionID // one session, two calls
	if err := db.InsertCDRs(ctx, recs); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		filter CDRFilter
		want   []int // indexes into recs, newest first
	}{
		{"all", CDRFilter{}, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"limit", CDRFilter{Limit: 3}, []int{9, 8, 7}},
		{"incoming call-id", CDRFilter{CallID: recs[4].CallID}, []int{4}},
		{"outgoing leg call-id", CDRFilter{CallID: recs[5].Legs[1].CallID}, []int{5}},
		{"session", CDRFilter{SessionID: recs[3].SessionID}, []int{7, 3}},
		{"session and call-id", CDRFilter{SessionID: recs[3].SessionID, CallID: recs[3].CallID}, []int{3}},
		{"no match", CDRFilter{CallID: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListCDRs(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.want))
			}
			for i, wi := range tt.want {
				assertRecord(t, got[i], recs[wi])
			}
		})
	}
}

func TestInsertCDRsIsAtomic(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	bad := sampleRecord(2)
	bad.Legs = append(bad.Legs, bad.Legs[0]) // duplicate leg index
	err := db.InsertCDRs(ctx, []cdr.Record{sampleRecord(1), bad})
	if err == nil {
		t.Fatal("insert with a duplicate leg succeeded")
	}
	if !isConstraint(err) {
		t.Errorf("error %v is not recognised as a constraint violation", err)
	}
	if n := countCDRs(t, db); n != 0 {
		t.Errorf("%d rows after a failed batch, want 0", n)
	}
}

func assertRecord(t *testing.T, got, want cdr.Record) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"StartedAt", got.StartedAt, want.StartedAt},
		{"AnsweredAt", got.AnsweredAt, want.AnsweredAt},
		{"EndedAt", got.EndedAt, want.EndedAt},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s %s = %v, want %v", want.CallID, c.name, c.got, c.want)
		}
		if c.got.Location() != time.UTC {
			t.Errorf("%s %s location = %v, want UTC", want.CallID, c.name, c.got.Location())
		}
	}
	// Times are compared above; compare the rest field by field.
	got.StartedAt, got.AnsweredAt, got.EndedAt = time.Time{}, time.Time{}, time.Time{}
	want.StartedAt, want.AnsweredAt, want.EndedAt = time.Time{}, time.Time{}, time.Time{}
	if len(want.Legs) == 0 {
		want.Legs = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record mismatch:\n got  %+v\n want %+v", got, want)
	}
}

func countCDRs(t testing.TB, db *DB) int {
	t.Helper()
	var n int
	if err := db.read.QueryRowContext(testContext(t), "SELECT COUNT(*) FROM cdr").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTimeFormatSortsChronologically(t *testing.T) {
	base := time.Date(2024, 5, 1, 12, 0, 5, 0, time.UTC)
	times := []time.Time{base, base.Add(time.Nanosecond), base.Add(100 * time.Millisecond), base.Add(time.Second)}
	for i := 1; i < len(times); i++ {
		a, b := formatTime(times[i-1]), formatTime(times[i])
		if a >= b {
			t.Errorf("%q sorts at or after %q", a, b)
		}
		if len(a) != len(b) {
			t.Errorf("%q and %q differ in width", a, b)
		}
	}
	if got := formatTime(time.Time{}); got != "0001-01-01T00:00:00.000000000Z" {
		t.Errorf("zero time formats as %q", got)
	}
}
