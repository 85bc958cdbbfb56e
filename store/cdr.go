package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"callpath/cdr"
)

// timeLayout is the stored time format; see the package documentation. The
// literal Z is right because appendTime converts to UTC first.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return string(appendTime(nil, t)) }

func appendTime(dst []byte, t time.Time) []byte { return t.UTC().AppendFormat(dst, timeLayout) }

func parseTime(s string) (time.Time, error) {
	// RFC3339Nano also accepts the fixed-width layout, and rows written by
	// hand or by a later version with an offset.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// Limits for CDRFilter.Limit.
const (
	DefaultCDRListLimit = 100
	MaxCDRListLimit     = 10000
)

// CDRFilter selects records for ListCDRs. Empty fields match everything.
type CDRFilter struct {
	// CallID matches the call's own Call-ID (its incoming leg) or the
	// Call-ID of any of its legs, because an operator tracing a problem
	// often holds the Call-ID of an outgoing leg.
	//
	// Only the incoming Call-ID is indexed; legs are stored inside the call's
	// row, and indexing their Call-IDs would make every insert much dearer.
	// So a Call-ID that is no call's incoming one, typically an outgoing
	// leg's, is looked for by scanning the table: that takes time in
	// proportion to the number of stored calls (about a second per million
	// on the development machine), unless SessionID narrows the search,
	// which makes it indexed again. A Call-ID that is some call's incoming one is found through the
	// index, and so are the calls of the same Session-ID in which it is an
	// outgoing leg, which covers a call that leaves callpath and comes back
	// (both legs carry the caller's Session-ID). The one match such a lookup
	// misses is a call in which the Call-ID is an outgoing leg and whose
	// Session-ID differs from that of the call it is the incoming leg of,
	// which would take a proxy that keeps the Call-ID but replaces the
	// Session-ID.
	CallID    string
	SessionID string
	// Limit caps the number of records: zero or less means
	// DefaultCDRListLimit, and it is clamped to MaxCDRListLimit.
	Limit int
}

// errInvalidRecord marks a record that can never be stored, so that a
// CDRWriter drops it instead of retrying. InsertCDRs reports it before
// touching the database.
var errInvalidRecord = errors.New("invalid call record")

// validateRecord checks what the database cannot: a leg index must be unique
// within its call, as the primary key of the former cdr_leg table made it.
func validateRecord(r *cdr.Record) error {
	for i := range r.Legs {
		for j := range i {
			if r.Legs[j].Index == r.Legs[i].Index {
				return fmt.Errorf("%w (call-id %q): leg index %d appears twice", errInvalidRecord, r.CallID, r.Legs[i].Index)
			}
		}
	}
	return nil
}

// isRecordError reports whether err is the fault of the records written
// rather than of the database, so that writing them again cannot help.
func isRecordError(err error) bool { return errors.Is(err, errInvalidRecord) || isConstraint(err) }

// cdrColumns are the columns InsertCDRs writes, cdrColumnCount of them.
const (
	cdrColumns = `call_id, session_id, from_number, to_number, started_at,
    answered_at, ended_at, duration_ms, final_code, hangup_by, reason, legs`
	cdrColumnCount = 12
)

// maxInsertRows is the most rows one INSERT statement carries. Each
// statement execution has a fixed cost in database/sql and the driver that a
// multi-row VALUES list pays once: 64 rows a statement took about a tenth
// less CPU per record than one, and 256 no less than 64, while a bigger
// statement (cdrColumnCount parameters a row) takes longer to compile and
// more memory to keep.
const maxInsertRows = 64

// insertSizes is how many prepared INSERT statements a DB keeps: one for
// each power of two from 1 to maxInsertRows, so that any batch is written
// with at most one statement of each size below maxInsertRows.
var insertSizes = bits.Len(maxInsertRows)

// insertCDRsSQL is the INSERT statement for rows records.
//
// OR FAIL rather than the default ABORT: for a statement that writes several
// rows and may abort, SQLite keeps a statement journal, a copy of every page
// the statement changes, so that it can undo the statement alone. Past 64
// KiB it goes to a temporary file, which doubled the bytes written per
// record. FAIL stops at the failing row without undoing the rows before it;
// InsertCDRs rolls the whole transaction back on any error anyway.
func insertCDRsSQL(rows int) string {
	row := "(" + strings.Repeat("?, ", cdrColumnCount-1) + "?)"
	var b strings.Builder
	b.WriteString("INSERT OR FAIL INTO cdr (" + cdrColumns + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// prepareInserts prepares the INSERT statements on the writer connection.
// They stay prepared for the life of the DB; InsertCDRs binds them to its
// transaction, which reuses the compiled statement.
func (db *DB) prepareInserts(ctx context.Context) error {
	db.insertCDRs = make([]*sql.Stmt, insertSizes)
	for i := range db.insertCDRs {
		s, err := db.write.PrepareContext(ctx, insertCDRsSQL(1<<i))
		if err != nil {
			return fmt.Errorf("prepare cdr insert: %w", err)
		}
		db.insertCDRs[i] = s
	}
	return nil
}

// cdrArgs turns records into statement arguments. Its buffers are reused
// from one chunk to the next, so that a batch allocates little beyond what
// boxing the arguments costs.
type cdrArgs struct {
	args []any
	text []byte // the chunk's formatted times and legs, back to back
	ends []int  // where each formatted value ends in text
}

// encode returns the arguments for records, in the order of cdrColumns.
// They are valid until the next call.
func (a *cdrArgs) encode(records []cdr.Record) []any {
	// Times and legs are formatted into one buffer and converted to a single
	// string, which the arguments slice: one allocation for the chunk
	// instead of one per value.
	a.text, a.ends = a.text[:0], a.ends[:0]
	for i := range records {
		r := &records[i]
		a.text = appendTime(a.text, r.StartedAt)
		a.ends = append(a.ends, len(a.text))
		if !r.AnsweredAt.IsZero() {
			a.text = appendTime(a.text, r.AnsweredAt)
		}
		a.ends = append(a.ends, len(a.text))
		a.text = appendTime(a.text, r.EndedAt)
		a.ends = append(a.ends, len(a.text))
		a.text = appendLegs(a.text, r.Legs)
		a.ends = append(a.ends, len(a.text))
	}
	text := string(a.text)
	start, k := 0, 0
	next := func() string {
		s := text[start:a.ends[k]]
		start = a.ends[k]
		k++
		return s
	}

	a.args = a.args[:0]
	for i := range records {
		r := &records[i]
		started := next()
		var answered any // NULL when never answered
		if s := next(); s != "" {
			answered = s
		}
		ended, legs := next(), next()
		a.args = append(a.args,
			r.CallID, r.SessionID, r.From, r.To, started,
			answered, ended, r.Duration().Milliseconds(), int64(r.FinalCode), string(r.HangupBy), r.Reason, legs)
	}
	return a.args
}

// InsertCDRs writes records synchronously, all in one transaction: either
// all of them are stored or none. The B2BUA's hot path should use a
// CDRWriter instead, which batches into this. A record with two legs of the
// same index is refused, and with it the whole batch, before anything is
// written.
//
// ctx can end the wait for the write lock and stops the batch between
// statements. It is not handed to the statements themselves: for a
// cancellable context the driver starts a watcher goroutine per statement,
// which made each insert about a third slower, and once the lock is held an
// insert waits on nothing that cancellation could cut short.
func (db *DB) InsertCDRs(ctx context.Context, records []cdr.Record) (err error) {
	if len(records) == 0 {
		return nil
	}
	for i := range records {
		if err := validateRecord(&records[i]); err != nil {
			return fmt.Errorf("insert cdrs: %w", err)
		}
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("insert cdrs: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	stmtCtx := context.WithoutCancel(ctx)

	// The transaction holds the only writer connection, so this lock is
	// never contended; it guards the argument buffers all the same.
	db.insertMu.Lock()
	defer db.insertMu.Unlock()
	a := &db.insertArgs
	defer clear(a.args) // let the batch's strings go
	// Multi-row statements, largest first: 64 rows a statement while at
	// least 64 remain, then one statement per set bit of the remainder.
	txStmts := make([]*sql.Stmt, insertSizes)
	for rest := records; len(rest) > 0; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("insert cdrs: %w", err)
		}
		size := bits.Len(uint(min(len(rest), maxInsertRows))) - 1 // index into insertCDRs
		n := 1 << size
		if txStmts[size] == nil {
			txStmts[size] = tx.StmtContext(stmtCtx, db.insertCDRs[size])
		}
		if _, err := txStmts[size].ExecContext(stmtCtx, a.encode(rest[:n])...); err != nil {
			if n == 1 {
				return fmt.Errorf("insert cdr (call-id %q): %w", rest[0].CallID, err)
			}
			return fmt.Errorf("insert %d cdrs (first call-id %q): %w", n, rest[0].CallID, err)
		}
		rest = rest[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert cdrs: commit: %w", err)
	}
	return nil
}

// appendLegs appends legs as the JSON array stored in cdr.legs, in the one
// compact form the migration describes.
func appendLegs(dst []byte, legs []cdr.Leg) []byte {
	dst = append(dst, '[')
	for i := range legs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"index":`...)
		dst = strconv.AppendInt(dst, int64(legs[i].Index), 10)
		dst = append(dst, `,"call_id":`...)
		dst = appendJSONString(dst, legs[i].CallID)
		dst = append(dst, `,"peer":`...)
		dst = appendJSONString(dst, legs[i].Peer)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// legCallIDNeedle is the text that cdr.legs contains exactly when one of
// the call's legs has the Call-ID callID. A JSON string holds a '"' only
// escaped, so the quotes in the needle can only be the ones around the
// call_id key and its value.
func legCallIDNeedle(callID string) string {
	return string(appendJSONString([]byte(`"call_id":`), callID))
}

// appendJSONString appends s as a JSON string. It escapes only what JSON
// requires: '"', '\' and control characters. JSON text must be UTF-8, so
// each byte of s that is not valid UTF-8 becomes U+FFFD, written as itself,
// as validUTF8 makes it; this keeps a string's encoding unique.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	done := 0 // s[:done] is in dst
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[done:i]...)
				dst = utf8.AppendRune(dst, utf8.RuneError)
				done = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[done:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}

// validUTF8 returns s with each byte that is not valid UTF-8 replaced by
// U+FFFD, which is what a string stored in cdr.legs reads back as.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s)) // the conversion replaces invalid bytes one by one
}

// storedLeg is a cdr.Leg as cdr.legs spells it.
type storedLeg struct {
	Index  int    `json:"index"`
	CallID string `json:"call_id"`
	Peer   string `json:"peer"`
}

// parseLegs decodes cdr.legs, in ascending leg index.
func parseLegs(text string) ([]cdr.Leg, error) {
	var stored []storedLeg
	if err := json.Unmarshal([]byte(text), &stored); err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, nil
	}
	legs := make([]cdr.Leg, len(stored))
	for i, l := range stored {
		legs[i] = cdr.Leg(l)
	}
	slices.SortStableFunc(legs, func(a, b cdr.Leg) int { return a.Index - b.Index })
	return legs, nil
}

// legCallIDMatch is true for a row one of whose legs has the Call-ID bound
// to its two parameters, the first given as legCallIDNeedle and the second
// through validUTF8. The substring test rules out nearly every row before
// the JSON is parsed; the parse makes the match exact whatever the row
// holds.
const legCallIDMatch = `(instr(c.legs, ?) > 0 AND EXISTS (SELECT 1 FROM json_each(c.legs) j WHERE j.value ->> 'call_id' = ?))`

// selectCDRs selects what queryCDRs scans.
const selectCDRs = `SELECT c.id, c.call_id, c.session_id, c.from_number, c.to_number,
    c.started_at, c.answered_at, c.ended_at, c.final_code, c.hangup_by, c.reason, c.legs
FROM cdr c`

// newestFirst orders and limits a selectCDRs query. The id tie-break makes
// the order total.
const newestFirst = "\nORDER BY c.started_at DESC, c.id DESC LIMIT ?"

// recentCDRsSQL lists, newest first, the calls that ended at or after ?1
// and those that ended before they started; see listRecent.
const recentCDRsSQL = "SELECT * FROM (" + selectCDRs + " WHERE c.ended_at >= ?1\nUNION ALL " +
	selectCDRs + " WHERE c.ended_at < c.started_at AND c.ended_at < ?1)\nORDER BY started_at DESC, id DESC LIMIT ?2"

// listCDRsQuery builds the query for a filter on CallID or SessionID.
// incoming says whether some call has f.CallID as its incoming Call-ID; see
// CDRFilter.CallID for what it changes.
func listCDRsQuery(f CDRFilter, incoming bool, limit int) (string, []any) {
	var conds []string
	var args []any
	if f.CallID != "" {
		if incoming {
			conds = append(conds, "(c.call_id = ? OR (c.session_id IN (SELECT s.session_id FROM cdr s WHERE s.call_id = ?) AND "+legCallIDMatch+"))")
			args = append(args, f.CallID, f.CallID, legCallIDNeedle(f.CallID), validUTF8(f.CallID))
		} else {
			conds = append(conds, legCallIDMatch)
			args = append(args, legCallIDNeedle(f.CallID), validUTF8(f.CallID))
		}
	}
	if f.SessionID != "" {
		conds = append(conds, "c.session_id = ?")
		args = append(args, f.SessionID)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return selectCDRs + where + newestFirst, append(args, limit)
}

// ListCDRs returns the records matching f with their legs, newest first
// (by started_at).
func (db *DB) ListCDRs(ctx context.Context, f CDRFilter) ([]cdr.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultCDRListLimit
	}
	limit = min(limit, MaxCDRListLimit)

	// One read transaction so that all queries see the same snapshot.
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list cdrs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	if f.CallID == "" && f.SessionID == "" {
		return listRecent(ctx, tx, limit)
	}
	incoming := false
	if f.CallID != "" {
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM cdr WHERE call_id = ?)", f.CallID).Scan(&incoming); err != nil {
			return nil, fmt.Errorf("list cdrs: %w", err)
		}
	}
	query, args := listCDRsQuery(f, incoming, limit)
	records, _, err := queryCDRs(ctx, tx, query, args)
	return records, err
}

// Ranges of ended_at that listRecent reads: the first is the last
// recentWindow before the newest record, and each next one is
// recentWindowGrowth times longer, up to recentWindowSteps ranges.
const (
	recentWindow       = time.Second
	recentWindowGrowth = 4
	recentWindowSteps  = 12 // the last reaches back about 48 days
)

// listRecent returns the limit newest records. There is no index on
// started_at (see the migration), so it reads the calls that ended in a
// recent range of time, from, and sorts them: if the limit-th newest of
// those started at or after from, no call that ended earlier can be newer,
// since a call ends after it starts. Otherwise the range is widened. Calls
// that ended before they started (a clock stepped back) are read every time
// through their own index. Comparisons are on the stored text, whose order
// is time order.
func listRecent(ctx context.Context, tx *sql.Tx, limit int) ([]cdr.Record, error) {
	var oldest, newest sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT (SELECT min(ended_at) FROM cdr), (SELECT max(ended_at) FROM cdr)").Scan(&oldest, &newest); err != nil {
		return nil, fmt.Errorf("list cdrs: %w", err)
	}
	if !newest.Valid {
		return []cdr.Record{}, nil // no records at all
	}
	end, endErr := parseTime(newest.String)
	begin, beginErr := parseTime(oldest.String)
	if endErr == nil && beginErr == nil {
		width := recentWindow
		for range recentWindowSteps {
			if width >= end.Sub(begin) {
				break // the range would hold every record
			}
			from := formatTime(end.Add(-width))
			records, last, err := queryCDRs(ctx, tx, recentCDRsSQL, []any{from, limit})
			if err != nil {
				return nil, err
			}
			if len(records) == limit && last >= from {
				return records, nil
			}
			width *= recentWindowGrowth
		}
	}
	// Sort the whole table: it is small, or ended_at holds text that is not
	// a stored time.
	records, _, err := queryCDRs(ctx, tx, selectCDRs+newestFirst, []any{limit})
	return records, err
}

// queryCDRs runs a selectCDRs query. It also returns the stored started_at
// of the last record.
func queryCDRs(ctx context.Context, tx *sql.Tx, query string, args []any) (records []cdr.Record, lastStarted string, err error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list cdrs: %w", err)
	}
	defer rows.Close()

	records = []cdr.Record{}
	for rows.Next() {
		var (
			id                   int64
			r                    cdr.Record
			started, ended, legs string
			answered             sql.NullString
			hangupBy             string
		)
		if err := rows.Scan(&id, &r.CallID, &r.SessionID, &r.From, &r.To,
			&started, &answered, &ended, &r.FinalCode, &hangupBy, &r.Reason, &legs); err != nil {
			return nil, "", fmt.Errorf("list cdrs: scan: %w", err)
		}
		r.HangupBy = cdr.HangupParty(hangupBy)
		if r.StartedAt, err = parseTime(started); err != nil {
			return nil, "", fmt.Errorf("list cdrs: cdr %d: started_at: %w", id, err)
		}
		if r.EndedAt, err = parseTime(ended); err != nil {
			return nil, "", fmt.Errorf("list cdrs: cdr %d: ended_at: %w", id, err)
		}
		if answered.Valid {
			if r.AnsweredAt, err = parseTime(answered.String); err != nil {
				return nil, "", fmt.Errorf("list cdrs: cdr %d: answered_at: %w", id, err)
			}
		}
		if r.Legs, err = parseLegs(legs); err != nil {
			return nil, "", fmt.Errorf("list cdrs: cdr %d: legs: %w", id, err)
		}
		records = append(records, r)
		lastStarted = started
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list cdrs: %w", err)
	}
	return records, lastStarted, nil
}
