package store

import (
	"context"
	"fmt"
	"time"

	"callpath/registry"
)

const upsertRegistrationSQL = `INSERT INTO registration
	(phone_number, route_type, sip_uri, mo_prefix, mt_prefix, owner, updated_at, expires_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (phone_number) DO UPDATE SET
	route_type = excluded.route_type, sip_uri = excluded.sip_uri, mo_prefix = excluded.mo_prefix,
	mt_prefix = excluded.mt_prefix, owner = excluded.owner, updated_at = excluded.updated_at,
	expires_at = excluded.expires_at`

// PutRegistration inserts or replaces the registration of its number.
func (db *DB) PutRegistration(ctx context.Context, r registry.Registration) error {
	return db.PutRegistrations(ctx, []registry.Registration{r})
}

// PutRegistrations inserts or replaces registrations in one transaction
// (bulk provisioning, imports).
func (db *DB) PutRegistrations(ctx context.Context, regs []registry.Registration) error {
	return db.writeTx(ctx, func(tx execer) error {
		for _, r := range regs {
			if _, err := tx.ExecContext(ctx, upsertRegistrationSQL,
				r.PhoneNumber, int32(r.RouteType), r.SIPURI, r.MOPrefix, r.MTPrefix, r.Owner,
				formatTime(r.UpdatedAt), formatTime(r.ExpiresAt)); err != nil {
				return fmt.Errorf("registration %s: %w", r.PhoneNumber, err)
			}
		}
		return nil
	})
}

// DeleteRegistration removes the registration of number, if any.
func (db *DB) DeleteRegistration(ctx context.Context, number string) error {
	return db.writeTx(ctx, func(tx execer) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM registration WHERE phone_number = ?`, number)
		return err
	})
}

// ActiveRegistrations returns the registrations that expire after now.
func (db *DB) ActiveRegistrations(ctx context.Context, now time.Time) ([]registry.Registration, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT phone_number, route_type, sip_uri, mo_prefix, mt_prefix,
		owner, updated_at, expires_at FROM registration WHERE expires_at > ?`, formatTime(now))
	if err != nil {
		return nil, fmt.Errorf("list registrations: %w", err)
	}
	defer rows.Close()
	var out []registry.Registration
	for rows.Next() {
		var r registry.Registration
		var rt int32
		var updated, expires string
		if err := rows.Scan(&r.PhoneNumber, &rt, &r.SIPURI, &r.MOPrefix, &r.MTPrefix, &r.Owner, &updated, &expires); err != nil {
			return nil, fmt.Errorf("list registrations: %w", err)
		}
		r.RouteType = registry.RouteType(rt)
		if r.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, fmt.Errorf("registration %s: %w", r.PhoneNumber, err)
		}
		if r.ExpiresAt, err = parseTime(expires); err != nil {
			return nil, fmt.Errorf("registration %s: %w", r.PhoneNumber, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list registrations: %w", err)
	}
	return out, nil
}
