package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
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

	// Legs are stored as JSON: strings that need escaping must survive, and
	// legs come back in leg index order whatever order they were given in.
	oddLegs := sampleRecord(4)
	oddLegs.StartedAt = answered.StartedAt.Add(-2 * time.Hour)
	oddLegs.Legs = []cdr.Leg{
		{Index: 3, CallID: `quote"back\slash`, Peer: "sip:\"Ünïcödé\" <sip:x@y>;tab=\t;nl=\n;nul=\x00;del=\x7f"},
		{Index: 1, CallID: oddLegs.CallID, Peer: "sip:+15550001@caller.example"},
		{Index: 2, CallID: `{"index":9}`, Peer: "</script>&amp;\u2028"},
		// JSON text is UTF-8: an invalid byte reads back as U+FFFD, and
		// the Call-ID is still found by the bytes it was stored with.
		{Index: 4, CallID: "bad-\xff-utf8", Peer: "sip:\xc3@x"},
	}
	oddLegsSorted := oddLegs
	oddLegsSorted.Legs = []cdr.Leg{oddLegs.Legs[1], oddLegs.Legs[2], oddLegs.Legs[0],
		{Index: 4, CallID: "bad-\uFFFD-utf8", Peer: "sip:\uFFFD@x"}}

	if err := db.InsertCDRs(ctx, []cdr.Record{answered, unanswered, noLegs, oddLegs}); err != nil {
		t.Fatal(err)
	}

	got, err := db.ListCDRs(ctx, CDRFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []cdr.Record{unanswered, answered, noLegs, oddLegsSorted} // newest first
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

	// Every leg can be found by its Call-ID, escaped characters and all.
	for _, l := range oddLegs.Legs {
		got, err := db.ListCDRs(ctx, CDRFilter{CallID: l.CallID})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].CallID != oddLegs.CallID {
			t.Errorf("ListCDRs by leg %d Call-ID %q returned %d records", l.Index, l.CallID, len(got))
		}
	}
}

func TestListCDRsFilters(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	var recs []cdr.Record
	for i := range 13 {
		recs = append(recs, sampleRecord(i))
	}
	recs[7].SessionID = recs[3].SessionID // one session, two calls
	// A call that left callpath and came back through a proxy: call 9's
	// outgoing leg is call 10's incoming one, and both carry the caller's
	// Session-ID.
	recs[10].SessionID = recs[9].SessionID
	recs[10].CallID = recs[9].Legs[1].CallID
	recs[10].Legs[0].CallID = recs[10].CallID
	// Near misses of call 11's outgoing Call-ID, which must not match it:
	// a longer Call-ID, a peer equal to it, and a Call-ID that spells out a
	// piece of the stored JSON.
	recs[11].Legs[1].CallID = "needle"
	recs[12].Legs[1].CallID = "needle-and-more"
	recs[12].Legs[1].Peer = "needle"
	recs[6].Legs[1].CallID = `needle","peer":"x`
	if err := db.InsertCDRs(ctx, recs); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		filter CDRFilter
		want   []int // indexes into recs, newest first
	}{
		{"all", CDRFilter{}, []int{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"limit", CDRFilter{Limit: 3}, []int{12, 11, 10}},
		{"incoming call-id", CDRFilter{CallID: recs[4].CallID}, []int{4}},
		{"outgoing leg call-id", CDRFilter{CallID: recs[5].Legs[1].CallID}, []int{5}},
		{"outgoing leg call-id and session", CDRFilter{CallID: recs[5].Legs[1].CallID, SessionID: recs[5].SessionID}, []int{5}},
		{"outgoing leg call-id, other session", CDRFilter{CallID: recs[5].Legs[1].CallID, SessionID: recs[4].SessionID}, nil},
		{"outgoing leg call-id, near misses", CDRFilter{CallID: "needle"}, []int{11}},
		{"outgoing leg call-id with quotes", CDRFilter{CallID: recs[6].Legs[1].CallID}, []int{6}},
		{"call-id both incoming and outgoing", CDRFilter{CallID: recs[10].CallID}, []int{10, 9}},
		{"session", CDRFilter{SessionID: recs[3].SessionID}, []int{7, 3}},
		{"session and call-id", CDRFilter{SessionID: recs[3].SessionID, CallID: recs[3].CallID}, []int{3}},
		{"no match", CDRFilter{CallID: "nope"}, nil},
		{"no match, session", CDRFilter{SessionID: "nope"}, nil},
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

	// Enough records for several INSERT statements, so that the bad one
	// fails after others have run.
	batch := func() []cdr.Record {
		var recs []cdr.Record
		for i := range 100 {
			recs = append(recs, sampleRecord(i))
		}
		return recs
	}

	t.Run("duplicate leg index", func(t *testing.T) {
		recs := batch()
		recs[70].Legs = append(recs[70].Legs, recs[70].Legs[0])
		err := db.InsertCDRs(ctx, recs)
		if err == nil {
			t.Fatal("insert with a duplicate leg index succeeded")
		}
		if !errors.Is(err, errInvalidRecord) || !isRecordError(err) {
			t.Errorf("error %v is not recognised as the record's fault", err)
		}
		if n := countCDRs(t, db); n != 0 {
			t.Errorf("%d rows after a failed batch, want 0", n)
		}
	})

	t.Run("refused by the database", func(t *testing.T) {
		recs := batch()
		refuseCallID(t, db, recs[70].CallID)
		err := db.InsertCDRs(ctx, recs)
		if err == nil {
			t.Fatal("insert of a record the database refuses succeeded")
		}
		if !isConstraint(err) || !isRecordError(err) {
			t.Errorf("error %v is not recognised as a constraint violation", err)
		}
		if n := countCDRs(t, db); n != 0 {
			t.Errorf("%d rows after a failed batch, want 0", n)
		}
	})
}

// refuseCallID makes the database refuse records with the given Call-ID, as
// a constraint added by a later migration or by an operator would.
func refuseCallID(t *testing.T, db *DB, callID string) {
	t.Helper()
	ctx := testContext(t)
	if _, err := db.write.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS refused_call_id (call_id TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `CREATE TRIGGER IF NOT EXISTS refuse_call_id BEFORE INSERT ON cdr
WHEN NEW.call_id IN (SELECT call_id FROM refused_call_id)
BEGIN SELECT RAISE(ABORT, 'call-id refused'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, "INSERT INTO refused_call_id (call_id) VALUES (?)", callID); err != nil {
		t.Fatal(err)
	}
}

func TestInsertCDRsStatementSizes(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	// Sizes around each multi-row statement size: every record must be
	// written exactly once, with its own values.
	next, total := 0, 0
	for _, n := range []int{1, 2, 3, 7, 63, 64, 65, 127, 128, 129, 200} {
		var recs []cdr.Record
		for range n {
			recs = append(recs, sampleRecord(next))
			next++
		}
		if err := db.InsertCDRs(ctx, recs); err != nil {
			t.Fatalf("insert %d: %v", n, err)
		}
		total += n
		if got := countCDRs(t, db); got != total {
			t.Fatalf("after inserting %d: %d rows, want %d", n, got, total)
		}
	}
	got, err := db.ListCDRs(ctx, CDRFilter{Limit: MaxCDRListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("ListCDRs returned %d records, want %d", len(got), total)
	}
	for i := range got {
		assertRecord(t, got[i], sampleRecord(total-1-i))
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

func TestListCDRsNewestMatchesFullSort(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	// Records arrive in the order calls end, up to 50 ms apart over about a
	// minute and a half, after calls of any length up to two hours, so that
	// ListCDRs has to widen its range of ended_at several times. Some share
	// a start time, which the id breaks, and a few ended before they started
	// (a clock stepped back), which no range of ended_at finds.
	if got, err := db.ListCDRs(ctx, CDRFilter{}); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListCDRs on an empty table = %v, %v; want an empty slice", got, err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	end := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var recs []cdr.Record
	for i := range 3000 {
		end = end.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
		r := sampleRecord(i)
		r.EndedAt = end
		switch {
		case i%500 == 7:
			r.StartedAt = end.Add(time.Duration(1+rng.IntN(3600)) * time.Second) // ended before it started
		case i%10 == 3 && i > 0:
			r.StartedAt = recs[i-1].StartedAt // a tie
		default:
			r.StartedAt = end.Add(-time.Duration(rng.Int64N(int64(2 * time.Hour))))
		}
		r.AnsweredAt = time.Time{}
		recs = append(recs, r)
	}
	if err := db.InsertCDRs(ctx, recs); err != nil {
		t.Fatal(err)
	}

	// Newest first by start; among equal starts the later insert first.
	want := make([]int, len(recs))
	for i := range want {
		want[i] = len(recs) - 1 - i
	}
	slices.SortStableFunc(want, func(a, b int) int { return recs[b].StartedAt.Compare(recs[a].StartedAt) })

	for _, limit := range []int{1, 10, 100, 1000, 2999, 3000, 5000} {
		got, err := db.ListCDRs(ctx, CDRFilter{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		n := min(limit, len(recs))
		if len(got) != n {
			t.Fatalf("limit %d: %d records, want %d", limit, len(got), n)
		}
		for i := range n {
			if got[i].CallID != recs[want[i]].CallID {
				t.Fatalf("limit %d: record %d is %s (started %v), want %s (started %v)", limit, i,
					got[i].CallID, got[i].StartedAt, recs[want[i]].CallID, recs[want[i]].StartedAt)
			}
		}
	}
}

func TestListCDRsQueryPlans(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	plan := func(query string, args []any) string {
		t.Helper()
		rows, err := db.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, notUsed int
			var detail string
			if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	filtered := func(f CDRFilter, incoming bool) (string, []any) { return listCDRsQuery(f, incoming, 10) }

	tests := []struct {
		name  string
		query string
		args  []any
		uses  []string
		scans bool // reads the whole table, as documented
	}{
		{name: "newest", query: recentCDRsSQL, args: []any{"x", 10},
			uses: []string{"SEARCH c USING INDEX cdr_ended_at_idx (ended_at>?)", "SCAN c USING INDEX cdr_clock_skew_idx"}},
		{name: "ended_at bounds", query: "SELECT (SELECT min(ended_at) FROM cdr), (SELECT max(ended_at) FROM cdr)",
			uses: []string{"SEARCH cdr USING COVERING INDEX cdr_ended_at_idx"}},
		{name: "incoming call-id exists", query: "SELECT EXISTS (SELECT 1 FROM cdr WHERE call_id = ?)", args: []any{"x"},
			uses: []string{"SEARCH cdr USING COVERING INDEX cdr_call_id_idx (call_id=?)"}},
		{name: "session", uses: []string{"SEARCH c USING INDEX cdr_session_id_idx (session_id=?)"}},
		{name: "incoming call-id", uses: []string{
			"MULTI-INDEX OR", "SEARCH c USING INDEX cdr_call_id_idx (call_id=?)", "SEARCH c USING INDEX cdr_session_id_idx (session_id=?)"}},
		{name: "outgoing call-id and session", uses: []string{"SEARCH c USING INDEX cdr_session_id_idx (session_id=?)"}},
		{name: "outgoing call-id", scans: true},
	}
	for i := range tests {
		tt := &tests[i]
		switch tt.name {
		case "session":
			tt.query, tt.args = filtered(CDRFilter{SessionID: "s"}, false)
		case "incoming call-id":
			tt.query, tt.args = filtered(CDRFilter{CallID: "c"}, true)
		case "outgoing call-id and session":
			tt.query, tt.args = filtered(CDRFilter{CallID: "c", SessionID: "s"}, false)
		case "outgoing call-id":
			tt.query, tt.args = filtered(CDRFilter{CallID: "c"}, false)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(tt.query, tt.args)
			for _, u := range tt.uses {
				if !strings.Contains(p, u) {
					t.Errorf("plan lacks %q:\n%s", u, p)
				}
			}
			scans := slices.ContainsFunc(strings.Split(p, "\n"), func(line string) bool {
				return line == "SCAN c" || line == "SCAN cdr"
			})
			switch {
			case scans && !tt.scans:
				t.Errorf("plan scans the table:\n%s", p)
			case !scans && tt.scans:
				t.Errorf("plan for a lookup documented as a scan changed, update CDRFilter.CallID:\n%s", p)
			}
		})
	}
}

// legsStrings are strings a leg's Call-ID or peer might hold, and some no
// SIP stack would produce, which the stored JSON must carry all the same.
var legsStrings = []string{
	"", "a84b4c76e66710@pc33.atlanta.example.com", "sip:+15550001@10.0.0.1:5060;transport=tcp",
	`"`, `\`, `\"`, `"\`, `a"b`, `a\b`, `\\"\\`, "\x00", "\x1f", "\x7f", "\t\r\n\b\f",
	"Ünïcödé", "日本語", "\u2028\u2029", "<&>", "\U0001F600",
	`","peer":"`, `"call_id":"x"`, `{"index":1}`, `]`, `\u0041`,
}

func TestLegsJSON(t *testing.T) {
	for _, a := range legsStrings {
		for _, b := range legsStrings {
			legs := []cdr.Leg{{Index: 1, CallID: a, Peer: b}, {Index: 2, CallID: b, Peer: a}}
			checkLegsJSON(t, legs)
		}
	}
	if got := string(appendLegs(nil, nil)); got != "[]" {
		t.Errorf("no legs stored as %s, want []", got)
	}
	// The stored form is the one the migration describes.
	got := string(appendLegs(nil, []cdr.Leg{{Index: 1, CallID: "a\"b", Peer: "sip:x"}, {Index: 2, CallID: "c", Peer: "\n"}}))
	if want := `[{"index":1,"call_id":"a\"b","peer":"sip:x"},{"index":2,"call_id":"c","peer":"\n"}]`; got != want {
		t.Errorf("stored legs\n got  %s\n want %s", got, want)
	}
}

func FuzzLegsJSON(f *testing.F) {
	for _, s := range legsStrings {
		f.Add(s, "sip:peer", "other")
	}
	f.Add("\xff", "\xfe", "\xc3")
	f.Fuzz(func(t *testing.T, callID, peer, other string) {
		checkLegsJSON(t, []cdr.Leg{{Index: 1, CallID: callID, Peer: peer}, {Index: 2, CallID: other, Peer: callID}})
	})
}

// checkLegsJSON checks that legs are stored as valid JSON that decodes to
// them, with invalid UTF-8 replaced as encoding/json replaces it, and that a
// leg Call-ID's needle is found in them exactly when a leg has that Call-ID,
// as given or as read back.
func checkLegsJSON(t *testing.T, legs []cdr.Leg) {
	t.Helper()
	text := string(appendLegs(nil, legs))
	if !json.Valid([]byte(text)) {
		t.Fatalf("legs %#v stored as invalid JSON %s", legs, text)
	}
	got, err := parseLegs(text)
	if err != nil {
		t.Fatalf("parse %s: %v", text, err)
	}
	want := slices.Clone(legs)
	for i := range want {
		// Each invalid byte reads back as U+FFFD, as with encoding/json.
		want[i].CallID = string([]rune(want[i].CallID))
		want[i].Peer = string([]rune(want[i].Peer))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("legs %#v came back as %#v from %s", legs, got, text)
	}
	for i := range legs {
		for _, s := range []string{legs[i].CallID, legs[i].Peer, want[i].CallID, want[i].Peer} {
			isCallID := slices.ContainsFunc(want, func(l cdr.Leg) bool { return l.CallID == string([]rune(s)) })
			if found := strings.Contains(text, legCallIDNeedle(s)); found != isCallID {
				t.Fatalf("needle for %q found %v in %s, want %v", s, found, text, isCallID)
			}
		}
	}
}
