package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"callpath/cdr"
)

// timeLayout is the stored time format; see the package documentation. The
// literal Z is right because formatTime converts to UTC first.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

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
	CallID    string
	SessionID string
	// Limit caps the number of records: zero or less means
	// DefaultCDRListLimit, and it is clamped to MaxCDRListLimit.
	Limit int
}

const insertCDRSQL = `INSERT INTO cdr (call_id, session_id, from_number, to_number, started_at,
    answered_at, ended_at, duration_ms, final_code, hangup_by, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const insertLegSQL = `INSERT INTO cdr_leg (cdr_id, leg_index, call_id, peer) VALUES (?, ?, ?, ?)`

// InsertCDRs writes records synchronously, all in one transaction: either
// all of them are stored or none. The B2BUA's hot path should use a
// CDRWriter instead, which batches into this.
//
// ctx can end the wait for the write lock and stops the batch between
// records. It is not handed to the statements themselves: for a cancellable
// context the driver starts a watcher goroutine per statement, which made
// each insert about a third slower, and once the lock is held an insert
// waits on nothing that cancellation could cut short.
func (db *DB) InsertCDRs(ctx context.Context, records []cdr.Record) (err error) {
	if len(records) == 0 {
		return nil
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

	// Prepared once per batch: compiling the statement per row costs more
	// than the insert itself.
	insCDR, err := tx.PrepareContext(stmtCtx, insertCDRSQL)
	if err != nil {
		return fmt.Errorf("insert cdrs: prepare: %w", err)
	}
	defer insCDR.Close()
	insLeg, err := tx.PrepareContext(stmtCtx, insertLegSQL)
	if err != nil {
		return fmt.Errorf("insert cdrs: prepare legs: %w", err)
	}
	defer insLeg.Close()

	for i := range records {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("insert cdrs: %w", err)
		}
		r := &records[i]
		var answered sql.NullString
		if !r.AnsweredAt.IsZero() {
			answered = sql.NullString{String: formatTime(r.AnsweredAt), Valid: true}
		}
		res, err := insCDR.ExecContext(stmtCtx,
			r.CallID, r.SessionID, r.From, r.To, formatTime(r.StartedAt),
			answered, formatTime(r.EndedAt), r.Duration().Milliseconds(),
			r.FinalCode, string(r.HangupBy), r.Reason,
		)
		if err != nil {
			return fmt.Errorf("insert cdr (call-id %q): %w", r.CallID, err)
		}
		// LastInsertId rather than RETURNING: it is free in SQLite, where
		// RETURNING costs a result set per row. A PostgreSQL store would use
		// RETURNING id, which is why the schema needs no change for it.
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert cdr (call-id %q): read id: %w", r.CallID, err)
		}
		for _, l := range r.Legs {
			if _, err := insLeg.ExecContext(stmtCtx, id, l.Index, l.CallID, l.Peer); err != nil {
				return fmt.Errorf("insert cdr leg %d (call-id %q): %w", l.Index, r.CallID, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert cdrs: commit: %w", err)
	}
	return nil
}

// ListCDRs returns the records matching f with their legs, newest first.
func (db *DB) ListCDRs(ctx context.Context, f CDRFilter) ([]cdr.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultCDRListLimit
	}
	limit = min(limit, MaxCDRListLimit)

	var conds []string
	var args []any
	if f.CallID != "" {
		conds = append(conds, "(c.call_id = ? OR c.id IN (SELECT l.cdr_id FROM cdr_leg l WHERE l.call_id = ?))")
		args = append(args, f.CallID, f.CallID)
	}
	if f.SessionID != "" {
		conds = append(conds, "c.session_id = ?")
		args = append(args, f.SessionID)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	// The id tie-break makes the order total, so the leg query below selects
	// exactly the same calls.
	selection := " FROM cdr c" + where + " ORDER BY c.started_at DESC, c.id DESC LIMIT ?"
	args = append(args, limit)

	// One read transaction so both queries see the same snapshot; without it
	// a write landing between them could leave a call without its legs.
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list cdrs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	records, index, err := queryCDRs(ctx, tx, `SELECT c.id, c.call_id, c.session_id, c.from_number, c.to_number,
    c.started_at, c.answered_at, c.ended_at, c.final_code, c.hangup_by, c.reason`+selection, args)
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return records, nil
	}
	if err := queryLegs(ctx, tx, `SELECT cdr_id, leg_index, call_id, peer FROM cdr_leg
WHERE cdr_id IN (SELECT c.id`+selection+`)
ORDER BY cdr_id, leg_index`, args, records, index); err != nil {
		return nil, err
	}
	return records, nil
}

// queryCDRs runs the record query; index maps each row id to its position
// in records.
func queryCDRs(ctx context.Context, tx *sql.Tx, query string, args []any) (records []cdr.Record, index map[int64]int, err error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list cdrs: %w", err)
	}
	defer rows.Close()

	records = []cdr.Record{}
	index = map[int64]int{}
	for rows.Next() {
		var (
			id             int64
			r              cdr.Record
			started, ended string
			answered       sql.NullString
			hangupBy       string
		)
		if err := rows.Scan(&id, &r.CallID, &r.SessionID, &r.From, &r.To,
			&started, &answered, &ended, &r.FinalCode, &hangupBy, &r.Reason); err != nil {
			return nil, nil, fmt.Errorf("list cdrs: scan: %w", err)
		}
		r.HangupBy = cdr.HangupParty(hangupBy)
		if r.StartedAt, err = parseTime(started); err != nil {
			return nil, nil, fmt.Errorf("list cdrs: cdr %d: started_at: %w", id, err)
		}
		if r.EndedAt, err = parseTime(ended); err != nil {
			return nil, nil, fmt.Errorf("list cdrs: cdr %d: ended_at: %w", id, err)
		}
		if answered.Valid {
			if r.AnsweredAt, err = parseTime(answered.String); err != nil {
				return nil, nil, fmt.Errorf("list cdrs: cdr %d: answered_at: %w", id, err)
			}
		}
		index[id] = len(records)
		records = append(records, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list cdrs: %w", err)
	}
	return records, index, nil
}

// queryLegs attaches the legs selected by query to their records.
func queryLegs(ctx context.Context, tx *sql.Tx, query string, args []any, records []cdr.Record, index map[int64]int) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("list cdr legs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var l cdr.Leg
		if err := rows.Scan(&id, &l.Index, &l.CallID, &l.Peer); err != nil {
			return fmt.Errorf("list cdr legs: scan: %w", err)
		}
		if i, ok := index[id]; ok {
			records[i].Legs = append(records[i].Legs, l)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list cdr legs: %w", err)
	}
	return nil
}
