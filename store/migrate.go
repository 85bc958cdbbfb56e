package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// ErrSchemaTooNew is returned by Open when the database has been migrated by
// a newer callpath than this one. Running anyway could write rows the newer
// schema no longer accepts, so the binary must be upgraded instead.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// migrationFiles holds the schema history. A file is named NNNN_name.sql,
// where NNNN is its version; versions are applied in ascending order and a
// released file is never edited, only followed by a new one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations sorted by version.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %q: name is not NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: version %q is not a positive integer", name, prefix)
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %q and %q share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate brings the schema of db up to the newest embedded migration. Each
// migration runs in its own transaction together with the schema_migrations
// row that records it, so a crash leaves it either fully applied or not at
// all, and a restart resumes where it stopped.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if err := db.createMigrationsTable(ctx); err != nil {
		return err
	}

	applied, err := appliedVersions(ctx, db.write)
	if err != nil {
		return err
	}
	if err := checkHistory(applied, ms); err != nil {
		return err
	}

	for _, m := range ms {
		if slices.Contains(applied, m.version) {
			continue
		}
		done, err := db.apply(ctx, m)
		if err != nil {
			return err
		}
		if done {
			db.log.WithFields(logrus.Fields{"version": m.version, "migration": m.name}).Info("applied database migration")
		}
	}
	return nil
}

func (db *DB) createMigrationsTable(ctx context.Context) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("create schema_migrations: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema_migrations: commit: %w", err)
	}
	return nil
}

func appliedVersions(ctx context.Context, db *sql.DB) ([]int, error) {
	rows, err := db.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return vs, nil
}

// checkHistory requires the applied versions (ascending) to be a prefix of
// the known ones. Anything else means the file was written by a different
// build, and guessing what its schema looks like is how data gets corrupted.
func checkHistory(applied []int, known []migration) error {
	latest := 0
	if len(known) > 0 {
		latest = known[len(known)-1].version
	}
	if n := len(applied); n > 0 && applied[n-1] > latest {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d", ErrSchemaTooNew, applied[n-1], latest)
	}
	for i, v := range applied {
		if i >= len(known) || known[i].version != v {
			return fmt.Errorf("database schema history %v does not match this binary's migrations", applied)
		}
	}
	return nil
}

// apply runs one migration. It reports false when another process applied
// it first, which the check inside the transaction detects: the writer's
// transactions begin IMMEDIATE, so the check and the DDL hold the write lock
// together.
func (db *DB) apply(ctx context.Context, m migration) (done bool, err error) {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return false, fmt.Errorf("migration %d: begin: %w", m.version, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit

	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&n); err != nil {
		return false, fmt.Errorf("migration %d: check: %w", m.version, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		m.version, formatTime(time.Now())); err != nil {
		return false, fmt.Errorf("migration %d: record: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration %d: commit: %w", m.version, err)
	}
	return true, nil
}
