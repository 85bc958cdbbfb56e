package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"callpath/upstream"
)

// PutCredentials inserts or replaces a number's upstream SIP account.
func (db *DB) PutCredentials(ctx context.Context, c upstream.Credentials) error {
	return db.writeTx(ctx, func(tx execer) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO upstream_account (phone_number, username, password, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (phone_number) DO UPDATE SET
			username = excluded.username, password = excluded.password, updated_at = excluded.updated_at`,
			c.Number, c.Username, c.Password, formatTime(time.Now()))
		if err != nil {
			return fmt.Errorf("upstream account %s: %w", c.Number, err)
		}
		return nil
	})
}

// DeleteCredentials removes a number's upstream SIP account, if any.
func (db *DB) DeleteCredentials(ctx context.Context, number string) error {
	return db.writeTx(ctx, func(tx execer) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM upstream_account WHERE phone_number = ?`, number)
		return err
	})
}

// Credentials returns a number's upstream SIP account.
func (db *DB) Credentials(ctx context.Context, number string) (upstream.Credentials, bool, error) {
	c := upstream.Credentials{Number: number}
	err := db.read.QueryRowContext(ctx, `SELECT username, password FROM upstream_account WHERE phone_number = ?`, number).
		Scan(&c.Username, &c.Password)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return c, false, nil
	case err != nil:
		return c, false, fmt.Errorf("upstream account %s: %w", number, err)
	}
	return c, true, nil
}

// AllCredentials returns every upstream SIP account.
func (db *DB) AllCredentials(ctx context.Context) ([]upstream.Credentials, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT phone_number, username, password FROM upstream_account ORDER BY phone_number`)
	if err != nil {
		return nil, fmt.Errorf("list upstream accounts: %w", err)
	}
	defer rows.Close()
	var out []upstream.Credentials
	for rows.Next() {
		var c upstream.Credentials
		if err := rows.Scan(&c.Number, &c.Username, &c.Password); err != nil {
			return nil, fmt.Errorf("list upstream accounts: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
