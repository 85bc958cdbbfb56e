package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Subscription statuses (CAMARA webrtc-events Subscription.status).
const (
	SubscriptionActivationRequested = "ACTIVATION_REQUESTED"
	SubscriptionActive              = "ACTIVE"
	SubscriptionInactive            = "INACTIVE"
	SubscriptionExpired             = "EXPIRED"
	SubscriptionDeleted             = "DELETED"
)

// ErrSubscriptionNotFound is returned for an unknown subscription id.
var ErrSubscriptionNotFound = errors.New("subscription not found")

// Subscription is a CAMARA webrtc-events subscription as stored.
type Subscription struct {
	ID           string
	OwnerNumber  string // the subscriber (token phone_number)
	OwnerSubject string
	ClientID     string
	Types        []string
	Sink         string
	SinkToken    string    // "" = none; never logged
	SinkTokenExp time.Time // zero when there is no sink token

	RegistrationID string
	DeviceID       string
	SessionID      string

	RequestedExpireTime time.Time // zero: not asked
	MaxEvents           int       // 0: no limit
	InitialEvent        *bool     // nil: not given

	EventsSent        int
	Status            string
	StartsAt          time.Time
	ExpiresAt         time.Time
	EndedAt           time.Time // zero while not ended
	TerminationReason string
}

// HasType reports whether the subscription asked for events of type t.
func (s Subscription) HasType(t string) bool {
	for _, x := range s.Types {
		if x == t {
			return true
		}
	}
	return false
}

const subscriptionColumns = `id, owner_number, owner_subject, client_id, event_types, sink, sink_token,
	sink_token_expires_at, registration_id, device_id, session_id, requested_expire_time, max_events,
	initial_event, events_sent, status, starts_at, expires_at, ended_at, termination_reason`

func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

func parseOptTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return parseTime(s)
}

// PutSubscription inserts a new subscription in the transaction.
func (t *Tx) PutSubscription(s Subscription) error {
	ie := -1
	if s.InitialEvent != nil {
		ie = 0
		if *s.InitialEvent {
			ie = 1
		}
	}
	_, err := t.exec(`INSERT INTO subscription (`+subscriptionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.OwnerNumber, s.OwnerSubject, s.ClientID, strings.Join(s.Types, " "), s.Sink, s.SinkToken,
		optTime(s.SinkTokenExp), s.RegistrationID, s.DeviceID, s.SessionID, optTime(s.RequestedExpireTime),
		s.MaxEvents, ie, s.EventsSent, s.Status, formatTime(s.StartsAt), formatTime(s.ExpiresAt),
		optTime(s.EndedAt), s.TerminationReason)
	if err != nil {
		return fmt.Errorf("subscription %s: %w", s.ID, err)
	}
	return nil
}

// EndSubscription moves an ACTIVE (or ACTIVATION_REQUESTED/INACTIVE)
// subscription to a final status with its reason. It reports false, and
// changes nothing, when the subscription is unknown or already ended, so
// that two end paths racing each other produce one subscription-ended.
func (t *Tx) EndSubscription(id, status, reason string, at time.Time) (bool, error) {
	res, err := t.exec(`UPDATE subscription SET status = ?, termination_reason = ?, ended_at = ?
		WHERE id = ? AND status IN (?, ?, ?)`, status, reason, formatTime(at), id,
		SubscriptionActive, SubscriptionActivationRequested, SubscriptionInactive)
	if err != nil {
		return false, fmt.Errorf("end subscription %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CountSubscriptionEvent adds one to the events sent to an ACTIVE
// subscription and returns the new count; ok is false when the subscription
// is not active or has already reached its maximum.
func (t *Tx) CountSubscriptionEvent(id string) (n int, ok bool, err error) {
	res, err := t.exec(`UPDATE subscription SET events_sent = events_sent + 1
		WHERE id = ? AND status = ? AND (max_events = 0 OR events_sent < max_events)`, id, SubscriptionActive)
	if err != nil {
		return 0, false, fmt.Errorf("count subscription event %s: %w", id, err)
	}
	if c, err := res.RowsAffected(); err != nil || c != 1 {
		return 0, false, err
	}
	s, err := t.Subscription(id)
	if err != nil {
		return 0, false, err
	}
	return s.EventsSent, true, nil
}

// SubscriptionUpdate is a refresh of an ACTIVE subscription: zero fields
// are left as they are.
type SubscriptionUpdate struct {
	RequestedExpireTime time.Time
	ExpiresAt           time.Time
	SinkToken           string
	SinkTokenExp        time.Time
}

// UpdateSubscription applies u to an ACTIVE subscription; false when it is
// unknown or not active.
func (t *Tx) UpdateSubscription(id string, u SubscriptionUpdate) (bool, error) {
	var sets []string
	var args []any
	if !u.RequestedExpireTime.IsZero() {
		sets, args = append(sets, "requested_expire_time = ?"), append(args, formatTime(u.RequestedExpireTime))
	}
	if !u.ExpiresAt.IsZero() {
		sets, args = append(sets, "expires_at = ?"), append(args, formatTime(u.ExpiresAt))
	}
	if u.SinkToken != "" {
		sets = append(sets, "sink_token = ?", "sink_token_expires_at = ?")
		args = append(args, u.SinkToken, optTime(u.SinkTokenExp))
	}
	if len(sets) == 0 {
		sets = append(sets, "status = status")
	}
	res, err := t.exec(`UPDATE subscription SET `+strings.Join(sets, ", ")+` WHERE id = ? AND status = ?`,
		append(args, id, SubscriptionActive)...)
	if err != nil {
		return false, fmt.Errorf("update subscription %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// querier is the read side of the transaction Update hands out (a *sql.Tx).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (t *Tx) query(query string, args ...any) (*sql.Rows, error) {
	if stmt := t.prepared(query); stmt != nil {
		return stmt.QueryContext(t.ctx, args...)
	}
	q, ok := t.tx.(querier)
	if !ok {
		return nil, errors.New("store: transaction cannot query")
	}
	return q.QueryContext(t.ctx, query, args...)
}

// Subscription reads one subscription inside the transaction.
func (t *Tx) Subscription(id string) (Subscription, error) {
	rows, err := t.query(`SELECT `+subscriptionColumns+` FROM subscription WHERE id = ?`, id)
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, err)
	}
	return oneSubscription(rows, id)
}

// ActiveSubscriptions lists, inside the transaction, the ACTIVE
// subscriptions of number that asked for eventType and whose expiry and
// sink token expiry are after now.
func (t *Tx) ActiveSubscriptions(number, eventType string, now time.Time) ([]Subscription, error) {
	rows, err := t.query(`SELECT `+subscriptionColumns+` FROM subscription
		WHERE owner_number = ? AND status = ? AND expires_at > ?
		AND (sink_token_expires_at = '' OR sink_token_expires_at > ?) ORDER BY starts_at, id`,
		number, SubscriptionActive, formatTime(now), formatTime(now))
	if err != nil {
		return nil, fmt.Errorf("active subscriptions: %w", err)
	}
	all, err := scanSubscriptions(rows)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if s.HasType(eventType) {
			out = append(out, s)
		}
	}
	return out, nil
}

// RegistrationSubscriptions lists, inside the transaction, the
// subscriptions not yet ended that name device registration
// registrationID.
func (t *Tx) RegistrationSubscriptions(registrationID string) ([]Subscription, error) {
	rows, err := t.query(`SELECT `+subscriptionColumns+` FROM subscription
		WHERE registration_id = ? AND registration_id != '' AND status IN (?, ?, ?) ORDER BY starts_at, id`,
		registrationID, SubscriptionActive, SubscriptionActivationRequested, SubscriptionInactive)
	if err != nil {
		return nil, fmt.Errorf("subscriptions of registration %s: %w", registrationID, err)
	}
	return scanSubscriptions(rows)
}

// CountActiveSubscriptions counts, inside the transaction, the ACTIVE
// subscriptions of number not yet expired by now.
func (t *Tx) CountActiveSubscriptions(number string, now time.Time) (int, error) {
	rows, err := t.query(`SELECT COUNT(*) FROM subscription WHERE owner_number = ? AND status = ? AND expires_at > ?`,
		number, SubscriptionActive, formatTime(now))
	if err != nil {
		return 0, fmt.Errorf("count subscriptions: %w", err)
	}
	defer rows.Close()
	n := 0
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("count subscriptions: %w", err)
		}
	}
	return n, rows.Err()
}

// Subscription reads one subscription.
func (db *DB) Subscription(ctx context.Context, id string) (Subscription, error) {
	rows, err := db.readQuery(ctx, `SELECT `+subscriptionColumns+` FROM subscription WHERE id = ?`, id)
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, err)
	}
	return oneSubscription(rows, id)
}

// SubscriptionsByOwner lists the subscriptions of a phone number, ended
// ones included until purged, oldest first.
func (db *DB) SubscriptionsByOwner(ctx context.Context, number string) ([]Subscription, error) {
	rows, err := db.readQuery(ctx, `SELECT `+subscriptionColumns+` FROM subscription
		WHERE owner_number = ? ORDER BY starts_at, id`, number)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return scanSubscriptions(rows)
}

// OpenSubscriptions lists up to limit subscriptions not yet ended, of
// owner or, when owner is "", of everyone, oldest first.
func (db *DB) OpenSubscriptions(ctx context.Context, owner string, limit int) ([]Subscription, error) {
	rows, err := db.readQuery(ctx, `SELECT `+subscriptionColumns+` FROM subscription
		WHERE (? = '' OR owner_number = ?) AND status IN (?, ?, ?) ORDER BY starts_at, id LIMIT ?`,
		owner, owner, SubscriptionActive, SubscriptionActivationRequested, SubscriptionInactive, limit)
	if err != nil {
		return nil, fmt.Errorf("open subscriptions: %w", err)
	}
	return scanSubscriptions(rows)
}

// DueSubscriptions lists up to limit ACTIVE subscriptions whose expiry is
// at or before now, or whose sink token expires at or before tokenBy.
func (db *DB) DueSubscriptions(ctx context.Context, now, tokenBy time.Time, limit int) ([]Subscription, error) {
	rows, err := db.readQuery(ctx, `SELECT `+subscriptionColumns+` FROM subscription
		WHERE status = ? AND (expires_at <= ? OR (sink_token_expires_at <> '' AND sink_token_expires_at <= ?))
		ORDER BY expires_at LIMIT ?`, SubscriptionActive, formatTime(now), formatTime(tokenBy), limit)
	if err != nil {
		return nil, fmt.Errorf("due subscriptions: %w", err)
	}
	return scanSubscriptions(rows)
}

// PurgeSubscriptions deletes the rows of subscriptions that ended before
// the given time.
func (db *DB) PurgeSubscriptions(ctx context.Context, endedBefore time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx execer) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subscription WHERE ended_at <> '' AND ended_at < ?`,
			formatTime(endedBefore))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge subscriptions: %w", err)
	}
	return n, nil
}

func oneSubscription(rows *sql.Rows, id string) (Subscription, error) {
	subs, err := scanSubscriptions(rows)
	if err != nil {
		return Subscription{}, err
	}
	if len(subs) == 0 {
		return Subscription{}, fmt.Errorf("%w: %s", ErrSubscriptionNotFound, id)
	}
	return subs[0], nil
}

func scanSubscriptions(rows *sql.Rows) ([]Subscription, error) {
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		var s Subscription
		var types, tokenExp, reqExp, starts, expires, ended string
		var ie int
		if err := rows.Scan(&s.ID, &s.OwnerNumber, &s.OwnerSubject, &s.ClientID, &types, &s.Sink, &s.SinkToken,
			&tokenExp, &s.RegistrationID, &s.DeviceID, &s.SessionID, &reqExp, &s.MaxEvents, &ie, &s.EventsSent,
			&s.Status, &starts, &expires, &ended, &s.TerminationReason); err != nil {
			return nil, fmt.Errorf("subscription: %w", err)
		}
		s.Types = strings.Fields(types)
		if ie >= 0 {
			b := ie == 1
			s.InitialEvent = &b
		}
		var err error
		for _, f := range []struct {
			dst *time.Time
			src string
		}{{&s.SinkTokenExp, tokenExp}, {&s.RequestedExpireTime, reqExp}, {&s.StartsAt, starts}, {&s.ExpiresAt, expires}, {&s.EndedAt, ended}} {
			if *f.dst, err = parseOptTime(f.src); err != nil {
				return nil, fmt.Errorf("subscription %s: %w", s.ID, err)
			}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subscription: %w", err)
	}
	return out, nil
}
