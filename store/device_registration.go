package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"callpath/devreg"
)

// DeviceRegistrations is the devreg.Store over this database. Its hooks,
// set by the app, run in the same transaction as the change: Ended records
// a registration-ends event (the CAMARA events layer enqueues it for the
// subscribers), Deleted ends what served the registration alone.
type DeviceRegistrations struct {
	DB      *DB
	Ended   func(tx *Tx, r devreg.Registration, reason string, at time.Time) error
	Deleted func(tx *Tx, id string) error
}

type deviceTx struct {
	tx *Tx
	s  DeviceRegistrations
}

func (d deviceTx) Put(r devreg.Registration) error {
	upstream := 0
	if r.Upstream {
		upstream = 1
	}
	_, err := d.tx.exec(`INSERT INTO device_registration (id, device_id, phone_number, subject, created_at, expires_at, upstream)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, upstream = excluded.upstream`,
		r.ID, r.DeviceID, r.PhoneNumber, r.Subject, formatTime(r.CreatedAt), formatTime(r.ExpiresAt), upstream)
	if err != nil {
		return fmt.Errorf("device registration %s: %w", r.ID, err)
	}
	return nil
}

func (d deviceTx) Delete(id string) error {
	if _, err := d.tx.exec(`DELETE FROM device_registration WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete device registration %s: %w", id, err)
	}
	if d.s.Deleted == nil {
		return nil
	}
	return d.s.Deleted(d.tx, id)
}

func (d deviceTx) DeleteDevice(number, device string) ([]string, error) {
	// One statement: the lookup is part of the delete, with no read
	// before the write transaction.
	rows, err := d.tx.query(`DELETE FROM device_registration WHERE phone_number = ? AND device_id = ? RETURNING id`, number, device)
	if err != nil {
		return nil, fmt.Errorf("delete device %s of %s: %w", device, number, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("delete device %s of %s: %w", device, number, err)
	}
	if d.s.Deleted != nil {
		for _, id := range ids {
			if err := d.s.Deleted(d.tx, id); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

func (d deviceTx) Ended(r devreg.Registration, reason string, at time.Time) error {
	if d.s.Ended == nil {
		return nil
	}
	return d.s.Ended(d.tx, r, reason, at)
}

// Update runs fn in one write transaction.
func (s DeviceRegistrations) Update(ctx context.Context, fn func(devreg.Tx) error) error {
	return s.DB.Update(ctx, func(tx *Tx) error { return fn(deviceTx{tx: tx, s: s}) })
}

const deviceColumns = `id, device_id, phone_number, subject, created_at, expires_at, upstream`

// Get returns registration id.
func (s DeviceRegistrations) Get(ctx context.Context, id string) (devreg.Registration, bool, error) {
	rows, err := s.DB.readQuery(ctx, `SELECT `+deviceColumns+` FROM device_registration WHERE id = ?`, id)
	if err != nil {
		return devreg.Registration{}, false, fmt.Errorf("device registration %s: %w", id, err)
	}
	defer rows.Close()
	regs, err := scanDeviceRegistrations(rows)
	if err != nil || len(regs) == 0 {
		return devreg.Registration{}, false, err
	}
	return regs[0], true, nil
}

// All returns every registration, expired ones not yet swept too.
func (s DeviceRegistrations) All(ctx context.Context) ([]devreg.Registration, error) {
	rows, err := s.DB.readQuery(ctx, `SELECT `+deviceColumns+` FROM device_registration`)
	if err != nil {
		return nil, fmt.Errorf("device registrations: %w", err)
	}
	defer rows.Close()
	return scanDeviceRegistrations(rows)
}

// OfNumber returns number's registrations, expired ones not yet swept too.
func (s DeviceRegistrations) OfNumber(ctx context.Context, number string) ([]devreg.Registration, error) {
	rows, err := s.DB.readQuery(ctx, `SELECT `+deviceColumns+` FROM device_registration WHERE phone_number = ?`, number)
	if err != nil {
		return nil, fmt.Errorf("device registrations of %s: %w", number, err)
	}
	defer rows.Close()
	return scanDeviceRegistrations(rows)
}

// Expired returns the registrations that expired by now.
func (s DeviceRegistrations) Expired(ctx context.Context, now time.Time) ([]devreg.Registration, error) {
	rows, err := s.DB.readQuery(ctx, `SELECT `+deviceColumns+` FROM device_registration WHERE expires_at <= ?`, formatTime(now))
	if err != nil {
		return nil, fmt.Errorf("expired device registrations: %w", err)
	}
	defer rows.Close()
	return scanDeviceRegistrations(rows)
}

func scanDeviceRegistrations(rows *sql.Rows) ([]devreg.Registration, error) {
	var out []devreg.Registration
	for rows.Next() {
		var r devreg.Registration
		var created, expires string
		var upstream int
		if err := rows.Scan(&r.ID, &r.DeviceID, &r.PhoneNumber, &r.Subject, &created, &expires, &upstream); err != nil {
			return nil, fmt.Errorf("device registration: %w", err)
		}
		var err error
		if r.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if r.ExpiresAt, err = parseTime(expires); err != nil {
			return nil, err
		}
		r.Upstream = upstream == 1
		out = append(out, r)
	}
	return out, errors.Join(rows.Err())
}
