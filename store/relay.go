package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// The relay's errors.
var (
	// ErrRelayBindingNotFound: no such binding (never was, or gone).
	ErrRelayBindingNotFound = errors.New("relay binding not found")
	// ErrRelayBindingLimit: the owner holds as many bindings as allowed.
	ErrRelayBindingLimit = errors.New("relay bindings per owner exhausted")
	// ErrRelayQueueFull: the binding's queue holds its maximum.
	ErrRelayQueueFull = errors.New("relay queue full")
	// ErrRelayTokenInvalid: the sink token is unknown, of another
	// binding, or expired.
	ErrRelayTokenInvalid = errors.New("relay sink token invalid")
)

// RelayBinding is one app instance known to the relay (migration 0009).
type RelayBinding struct {
	ID         string
	Owner      string
	DeviceID   string
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiredUnreported counts events dropped (too old, queue full) that
	// the app has not been told of yet.
	ExpiredUnreported int
}

// RelayEvent is a CloudEvent waiting for its app's acknowledgement.
type RelayEvent struct {
	Seq       int64 // set by the store; increases with every event
	BindingID string
	EventID   string
	Body      []byte // structured JSON
	CreatedAt time.Time
}

// RelayAttach describes a connecting app to AttachRelayBinding.
type RelayAttach struct {
	// BindingID names the binding directly (the app holds a relay-issued
	// token); empty: the binding of Owner and DeviceID, created if needed.
	BindingID       string
	Owner, DeviceID string
	NewID           string // id of the binding if one is created
	MaxPerOwner     int    // bindings one owner may hold; 0: no limit
	// TokenHash is the SHA-256 of the sink token handed out on this
	// connect, valid until TokenExpires. The binding keeps its KeepTokens
	// newest tokens (0: all of them).
	TokenHash    []byte
	TokenExpires time.Time
	KeepTokens   int
	Now          time.Time
}

// RelayAttached is what AttachRelayBinding did besides finding the binding.
type RelayAttached struct {
	Created bool     // a new binding
	Trimmed [][]byte // hashes of the sink tokens dropped beyond KeepTokens
}

// AttachRelayBinding finds (or creates) the binding of a connecting app,
// marks it seen and adds its new sink token, in one transaction.
func (db *DB) AttachRelayBinding(ctx context.Context, a RelayAttach) (b RelayBinding, done RelayAttached, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		done = RelayAttached{}
		var found bool
		var err error
		if a.BindingID != "" {
			b, found, err = tx.relayBindingWhere(`id = ?`, a.BindingID)
			if err == nil && !found {
				return ErrRelayBindingNotFound
			}
		} else {
			b, found, err = tx.relayBindingWhere(`owner = ? AND device_id = ?`, a.Owner, a.DeviceID)
		}
		if err != nil {
			return err
		}
		if !found {
			if err := tx.checkOwnerBindings(a.Owner, a.MaxPerOwner); err != nil {
				return err
			}
			b = RelayBinding{ID: a.NewID, Owner: a.Owner, DeviceID: a.DeviceID, CreatedAt: a.Now, LastSeenAt: a.Now}
			if _, err := tx.exec(`INSERT INTO relay_binding (id, owner, device_id, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)`,
				b.ID, b.Owner, b.DeviceID, formatTime(a.Now), formatTime(a.Now)); err != nil {
				return fmt.Errorf("create relay binding: %w", err)
			}
			done.Created = true
		} else {
			if _, err := tx.exec(`UPDATE relay_binding SET last_seen_at = ? WHERE id = ?`, formatTime(a.Now), b.ID); err != nil {
				return fmt.Errorf("relay binding %s: %w", b.ID, err)
			}
			b.LastSeenAt = a.Now
		}
		if len(a.TokenHash) == 0 {
			return nil
		}
		if _, err := tx.exec(`INSERT INTO relay_sink_token (hash, binding_id, expires_at) VALUES (?, ?, ?)`,
			a.TokenHash, b.ID, formatTime(a.TokenExpires)); err != nil {
			return fmt.Errorf("relay sink token: %w", err)
		}
		if a.KeepTokens > 0 && !done.Created { // a new binding holds one token
			// The limit is written into the SQL: bound, it made SQLite
			// prepare the statement again on every run.
			rows, err := tx.query(`DELETE FROM relay_sink_token WHERE binding_id = ? AND hash NOT IN
				(SELECT hash FROM relay_sink_token WHERE binding_id = ? ORDER BY expires_at DESC LIMIT `+strconv.Itoa(a.KeepTokens)+`)
				RETURNING hash`, b.ID, b.ID)
			if err != nil {
				return fmt.Errorf("relay sink tokens: %w", err)
			}
			defer rows.Close()
			for rows.Next() {
				var h []byte
				if err := rows.Scan(&h); err != nil {
					return fmt.Errorf("relay sink tokens: %w", err)
				}
				done.Trimmed = append(done.Trimmed, h)
			}
			return rows.Err()
		}
		return nil
	})
	if err != nil {
		return RelayBinding{}, RelayAttached{}, err
	}
	return b, done, nil
}

// checkOwnerBindings refuses a new binding when owner holds max already.
func (t *Tx) checkOwnerBindings(owner string, max int) error {
	if max <= 0 {
		return nil
	}
	n, err := t.count(`SELECT COUNT(*) FROM (SELECT 1 FROM relay_binding WHERE owner = ? LIMIT `+strconv.Itoa(max)+`)`, owner)
	if err != nil {
		return fmt.Errorf("count relay bindings: %w", err)
	}
	if n >= max {
		return fmt.Errorf("%w (%d)", ErrRelayBindingLimit, max)
	}
	return nil
}

// count runs a query returning one integer inside the transaction.
func (t *Tx) count(query string, args ...any) (int, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

const relayBindingColumns = `id, owner, device_id, created_at, last_seen_at, expired_unreported`

func (t *Tx) relayBindingWhere(where string, args ...any) (RelayBinding, bool, error) {
	rows, err := t.query(`SELECT `+relayBindingColumns+` FROM relay_binding WHERE `+where, args...)
	if err != nil {
		return RelayBinding{}, false, fmt.Errorf("relay binding: %w", err)
	}
	return scanRelayBinding(rows)
}

// RelayBinding reads one binding.
func (db *DB) RelayBinding(ctx context.Context, id string) (RelayBinding, error) {
	rows, err := db.readQuery(ctx, `SELECT `+relayBindingColumns+` FROM relay_binding WHERE id = ?`, id)
	if err != nil {
		return RelayBinding{}, fmt.Errorf("relay binding: %w", err)
	}
	b, ok, err := scanRelayBinding(rows)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s", ErrRelayBindingNotFound, id)
	}
	return b, err
}

func scanRelayBinding(rows *sql.Rows) (RelayBinding, bool, error) {
	defer rows.Close()
	if !rows.Next() {
		return RelayBinding{}, false, rows.Err()
	}
	var b RelayBinding
	var created, seen string
	if err := rows.Scan(&b.ID, &b.Owner, &b.DeviceID, &created, &seen, &b.ExpiredUnreported); err != nil {
		return RelayBinding{}, false, fmt.Errorf("relay binding: %w", err)
	}
	var err error
	if b.CreatedAt, err = parseTime(created); err != nil {
		return RelayBinding{}, false, err
	}
	if b.LastSeenAt, err = parseTime(seen); err != nil {
		return RelayBinding{}, false, err
	}
	return b, true, rows.Err()
}

// readQuery runs a query on the reader pool through a statement prepared
// once.
func (db *DB) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	stmt, err := db.readStmts.prepared(ctx, db.read, query)
	if err != nil {
		return nil, err
	}
	return stmt.QueryContext(ctx, args...)
}

// CheckRelaySinkToken accepts a sink token (its SHA-256) for a binding and
// returns when it expires: nil when it is one of the binding's and not
// expired at now, ErrRelayBindingNotFound when the binding is gone,
// ErrRelayTokenInvalid otherwise.
func (db *DB) CheckRelaySinkToken(ctx context.Context, bindingID string, hash []byte, now time.Time) (time.Time, error) {
	rows, err := db.readQuery(ctx, `SELECT binding_id, expires_at FROM relay_sink_token WHERE hash = ?`, hash)
	if err != nil {
		return time.Time{}, fmt.Errorf("relay sink token: %w", err)
	}
	var owner, expires string
	found := false
	if rows.Next() {
		found = true
		err = rows.Scan(&owner, &expires)
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("relay sink token: %w", err)
	}
	if found && owner == bindingID {
		exp, err := parseTime(expires)
		if err != nil {
			return time.Time{}, err
		}
		if now.Before(exp) {
			return exp, nil
		}
	}
	// Why not: a gone binding is told apart, so the sender stops (410).
	if _, err := db.RelayBinding(ctx, bindingID); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, ErrRelayTokenInvalid
}

// RelayQueueLimits bound one binding's queue.
type RelayQueueLimits struct {
	MaxEvents int // 0: no limit
	// DropOldest makes room for a new event in a full queue by dropping
	// the oldest (counted in ExpiredUnreported); otherwise the new event
	// is refused with ErrRelayQueueFull.
	DropOldest bool
}

// RelayAppended is what AppendRelayEvent did.
type RelayAppended struct {
	Seq       int64 // the new event's seq; 0 for a duplicate
	Duplicate bool  // an event with this id was queued already: nothing changed
	Dropped   int   // oldest events dropped to make room
}

// boundedRelayInserts holds the text of boundedRelayInsert per limit: it
// is built once, not for every event.
var boundedRelayInserts sync.Map // int → string

// boundedRelayInsert is the insert of an event into a queue of at most max
// events. One statement inserts only while the queue has room: its count
// stops past the limit, so a full queue costs at most max index entries,
// never a table scan. The limit is written into the SQL: bound, it made
// SQLite prepare the statement again on every run.
func boundedRelayInsert(max int) string {
	if sql, ok := boundedRelayInserts.Load(max); ok {
		return sql.(string)
	}
	n := strconv.Itoa(max)
	sql := `INSERT OR IGNORE INTO relay_event (binding_id, event_id, body, created_at) SELECT ?, ?, ?, ?
		WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM relay_event WHERE binding_id = ? LIMIT ` + n + `)) < ` + n
	boundedRelayInserts.Store(max, sql)
	return sql
}

// AppendRelayEvent queues e for its binding within limits, in one
// transaction: when it returns without error the event is committed.
func (db *DB) AppendRelayEvent(ctx context.Context, e RelayEvent, limits RelayQueueLimits) (RelayAppended, error) {
	var out RelayAppended
	err := db.Update(ctx, func(tx *Tx) error {
		out = RelayAppended{}
		args := make([]any, 4, 5)
		args[0], args[1], args[2], args[3] = e.BindingID, e.EventID, e.Body, formatTime(e.CreatedAt)
		insert := `INSERT OR IGNORE INTO relay_event (binding_id, event_id, body, created_at) VALUES (?, ?, ?, ?)`
		if limits.MaxEvents > 0 && !limits.DropOldest {
			insert = boundedRelayInsert(limits.MaxEvents)
			args = append(args, e.BindingID)
		}
		res, err := tx.exec(insert, args...)
		if err != nil {
			if isForeignKey(err) {
				return fmt.Errorf("%w: %s", ErrRelayBindingNotFound, e.BindingID)
			}
			return fmt.Errorf("relay event %s: %w", e.EventID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// A duplicate, or (reject) a full queue.
			dup, err := tx.count(`SELECT COUNT(*) FROM relay_event WHERE binding_id = ? AND event_id = ?`, e.BindingID, e.EventID)
			if err != nil {
				return fmt.Errorf("relay event %s: %w", e.EventID, err)
			}
			if dup == 0 {
				if _, err := tx.relayBindingExists(e.BindingID); err != nil {
					return err
				}
				return ErrRelayQueueFull
			}
			out.Duplicate = true
			return nil
		}
		if out.Seq, err = res.LastInsertId(); err != nil {
			return err
		}
		if limits.MaxEvents <= 0 || !limits.DropOldest {
			return nil
		}
		// Drop what lies beyond the newest MaxEvents of the binding.
		res, err = tx.exec(`DELETE FROM relay_event WHERE binding_id = ? AND seq <=
			(SELECT seq FROM relay_event WHERE binding_id = ? ORDER BY seq DESC LIMIT 1 OFFSET `+strconv.Itoa(limits.MaxEvents)+`)`,
			e.BindingID, e.BindingID)
		if err != nil {
			return fmt.Errorf("relay queue: %w", err)
		}
		dropped, err := res.RowsAffected()
		if err != nil || dropped == 0 {
			return err
		}
		if _, err := tx.exec(`UPDATE relay_binding SET expired_unreported = expired_unreported + ? WHERE id = ?`,
			dropped, e.BindingID); err != nil {
			return fmt.Errorf("relay queue: %w", err)
		}
		out.Dropped = int(dropped)
		return nil
	})
	return out, err
}

// relayBindingExists is ErrRelayBindingNotFound for a gone binding.
func (t *Tx) relayBindingExists(id string) (bool, error) {
	n, err := t.count(`SELECT COUNT(*) FROM relay_binding WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("relay binding: %w", err)
	}
	if n == 0 {
		return false, fmt.Errorf("%w: %s", ErrRelayBindingNotFound, id)
	}
	return true, nil
}

func isForeignKey(err error) bool {
	var se interface{ Code() int }
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// RelayEvents returns up to limit events of a binding after seq, in order.
func (db *DB) RelayEvents(ctx context.Context, bindingID string, afterSeq int64, limit int) ([]RelayEvent, error) {
	rows, err := db.readQuery(ctx, `SELECT seq, event_id, body, created_at FROM relay_event
		WHERE binding_id = ? AND seq > ? ORDER BY seq LIMIT ?`, bindingID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("relay events: %w", err)
	}
	defer rows.Close()
	var out []RelayEvent
	for rows.Next() {
		e := RelayEvent{BindingID: bindingID}
		var created string
		if err := rows.Scan(&e.Seq, &e.EventID, &e.Body, &created); err != nil {
			return nil, fmt.Errorf("relay events: %w", err)
		}
		if e.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relay events: %w", err)
	}
	return out, nil
}

// RelayAck is an app's acknowledgement: every event of the binding up to
// UpToSeq, or the one event EventID.
type RelayAck struct {
	BindingID string
	UpToSeq   int64
	EventID   string
}

// AckRelayEvents removes acknowledged events, all acks in one transaction;
// it returns how many events went.
func (db *DB) AckRelayEvents(ctx context.Context, acks []RelayAck) (int64, error) {
	var total int64
	err := db.Update(ctx, func(tx *Tx) error {
		total = 0
		for _, a := range acks {
			var res sql.Result
			var err error
			if a.EventID != "" {
				res, err = tx.exec(`DELETE FROM relay_event WHERE binding_id = ? AND event_id = ?`, a.BindingID, a.EventID)
			} else {
				res, err = tx.exec(`DELETE FROM relay_event WHERE binding_id = ? AND seq <= ?`, a.BindingID, a.UpToSeq)
			}
			if err != nil {
				return fmt.Errorf("relay ack: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, err
}

// ExpireRelayEvents drops up to limit events created before cutoff and
// counts them in their bindings' ExpiredUnreported; it returns how many
// each binding lost.
//
// Events are taken in seq order, stopping at the first one not old enough:
// seq and created_at rise together (one writer), so this visits only the
// expired rows and needs no index on created_at.
func (db *DB) ExpireRelayEvents(ctx context.Context, cutoff time.Time, limit int) (map[string]int, error) {
	lost := map[string]int{}
	err := db.Update(ctx, func(tx *Tx) error {
		clear(lost)
		rows, err := tx.query(`SELECT seq, binding_id, created_at FROM relay_event ORDER BY seq LIMIT ?`, limit)
		if err != nil {
			return fmt.Errorf("expire relay events: %w", err)
		}
		cut := formatTime(cutoff)
		var last int64
		for rows.Next() {
			var seq int64
			var binding, created string
			if err := rows.Scan(&seq, &binding, &created); err != nil {
				rows.Close()
				return fmt.Errorf("expire relay events: %w", err)
			}
			if created >= cut { // the fixed-width format orders as text
				break
			}
			last = seq
			lost[binding]++
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if last == 0 {
			return nil
		}
		if _, err := tx.exec(`DELETE FROM relay_event WHERE seq <= ?`, last); err != nil {
			return fmt.Errorf("expire relay events: %w", err)
		}
		for binding, n := range lost {
			if _, err := tx.exec(`UPDATE relay_binding SET expired_unreported = expired_unreported + ? WHERE id = ?`, n, binding); err != nil {
				return fmt.Errorf("expire relay events: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lost, nil
}

// ReportedRelayExpired records that the app of a binding was told of n
// dropped events.
func (db *DB) ReportedRelayExpired(ctx context.Context, bindingID string, n int) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(`UPDATE relay_binding SET expired_unreported = MAX(expired_unreported - ?, 0) WHERE id = ?`, n, bindingID)
		return err
	})
}

// TouchRelayBindings marks bindings seen at now (a disconnect; bindings
// still connected when idle ones are swept).
func (db *DB) TouchRelayBindings(ctx context.Context, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return db.Update(ctx, func(tx *Tx) error {
		for _, id := range ids {
			if _, err := tx.exec(`UPDATE relay_binding SET last_seen_at = ? WHERE id = ?`, formatTime(now), id); err != nil {
				return fmt.Errorf("touch relay binding: %w", err)
			}
		}
		return nil
	})
}

// IdleRelayBindings lists up to limit bindings last seen before cutoff.
func (db *DB) IdleRelayBindings(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id FROM relay_binding WHERE last_seen_at < ? LIMIT ?`, formatTime(cutoff), limit)
	if err != nil {
		return nil, fmt.Errorf("idle relay bindings: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("idle relay bindings: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// DeleteRelayBindings removes bindings with their events and sink tokens;
// it returns how many existed.
func (db *DB) DeleteRelayBindings(ctx context.Context, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	err := db.Update(ctx, func(tx *Tx) error {
		n = 0
		for _, id := range ids {
			res, err := tx.exec(`DELETE FROM relay_binding WHERE id = ?`, id)
			if err != nil {
				return fmt.Errorf("delete relay binding: %w", err)
			}
			c, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += c
		}
		return nil
	})
	return n, err
}

// PurgeRelaySinkTokens deletes the sink tokens expired at now.
func (db *DB) PurgeRelaySinkTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := db.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(`DELETE FROM relay_sink_token WHERE expires_at <= ?`, formatTime(now))
		if err != nil {
			return fmt.Errorf("purge relay sink tokens: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// RelayDepth counts the bindings and the events waiting in their queues.
func (db *DB) RelayDepth(ctx context.Context) (bindings, events int, err error) {
	err = db.read.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM relay_binding), (SELECT COUNT(*) FROM relay_event)`).
		Scan(&bindings, &events)
	if err != nil {
		err = fmt.Errorf("relay depth: %w", err)
	}
	return bindings, events, err
}
