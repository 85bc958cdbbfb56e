package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// quietLogger returns a logger that records entries instead of printing them.
func quietLogger() (*logrus.Entry, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	return logrus.NewEntry(l), hook
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openTestDB opens a database in a fresh directory and closes it at cleanup.
func openTestDB(t testing.TB, opts Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "dir", "callpath.db")
	db := openAt(t, path, opts)
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close db: %v", err)
		}
	})
	return db, path
}

func openAt(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = quietLogger()
	}
	db, err := Open(testContext(t), path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return db
}

func TestOpenSetsPragmas(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	ctx := testContext(t)

	checks := []struct {
		pool   string
		pragma string
		want   string
	}{
		{"write", "journal_mode", "wal"},
		{"read", "journal_mode", "wal"},
		{"write", "synchronous", "1"}, // NORMAL
		{"write", "cache_size", "-65536"},
		{"write", "wal_autocheckpoint", "10000"},
		{"write", "foreign_keys", "1"},
		{"read", "foreign_keys", "1"},
		{"write", "busy_timeout", "50"}, // writeBusySlice; beginWrite waits the rest
		{"read", "busy_timeout", "5000"},
		{"read", "query_only", "1"},
		{"write", "query_only", "0"},
	}
	for _, c := range checks {
		pool := db.write
		if c.pool == "read" {
			pool = db.read
		}
		var got string
		if err := pool.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", c.pool, c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s: PRAGMA %s = %q, want %q", c.pool, c.pragma, got, c.want)
		}
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestReadersCannotWrite(t *testing.T) {
	db, _ := openTestDB(t, Options{})
	_, err := db.read.ExecContext(testContext(t), "DELETE FROM cdr")
	if err == nil {
		t.Fatal("delete through the reader pool succeeded, want query_only error")
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if db, err := Open(testContext(t), p, Options{}); err == nil {
			_ = db.Close()
			t.Errorf("Open(%q) succeeded, want error", p)
		}
	}
}

func TestMigrationsApplyOnceAcrossReopen(t *testing.T) {
	known, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(known) == 0 {
		t.Fatal("no embedded migrations")
	}
	path := filepath.Join(t.TempDir(), "callpath.db")
	ctx := testContext(t)

	type row struct {
		version   int
		appliedAt string
	}
	readHistory := func(db *DB) []row {
		t.Helper()
		rows, err := db.read.QueryContext(ctx, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var rs []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.version, &r.appliedAt); err != nil {
				t.Fatal(err)
			}
			if _, err := parseTime(r.appliedAt); err != nil {
				t.Errorf("applied_at %q: %v", r.appliedAt, err)
			}
			rs = append(rs, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return rs
	}

	log, hook := quietLogger()
	db := openAt(t, path, Options{Logger: log})
	first := readHistory(db)
	if len(first) != len(known) {
		t.Fatalf("after first open: %d migrations recorded, want %d", len(first), len(known))
	}
	for i, r := range first {
		if r.version != known[i].version {
			t.Errorf("migration %d: version %d, want %d", i, r.version, known[i].version)
		}
	}
	applied := len(hook.AllEntries())
	if applied != len(known) {
		t.Errorf("first open logged %d entries, want one per migration (%d)", applied, len(known))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	hook.Reset()
	db = openAt(t, path, Options{Logger: log})
	defer db.Close()
	second := readHistory(db)
	if len(second) != len(first) {
		t.Fatalf("after reopen: %d migrations recorded, want %d", len(second), len(first))
	}
	for i := range first {
		if first[i] != second[i] {
			t.Errorf("migration row changed across reopen: %+v -> %+v", first[i], second[i])
		}
	}
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("reopen logged %d entries, want none (nothing to apply)", n)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	known, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "callpath.db")
	ctx := testContext(t)

	db := openAt(t, path, Options{})
	if _, err := db.write.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		known[len(known)-1].version+1, formatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	log, _ := quietLogger()
	db, err = Open(ctx, path, Options{Logger: log})
	if err == nil {
		_ = db.Close()
		t.Fatal("Open succeeded on a database from the future")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open error = %v, want ErrSchemaTooNew", err)
	}
}

func TestCheckHistory(t *testing.T) {
	known := []migration{{version: 1}, {version: 2}, {version: 3}}
	tests := []struct {
		applied []int
		wantErr bool
		tooNew  bool
	}{
		{nil, false, false},
		{[]int{1}, false, false},
		{[]int{1, 2, 3}, false, false},
		{[]int{1, 3}, true, false},
		{[]int{2}, true, false},
		{[]int{1, 2, 3, 4}, true, true},
	}
	for _, tt := range tests {
		err := checkHistory(tt.applied, known)
		if (err != nil) != tt.wantErr {
			t.Errorf("checkHistory(%v) = %v, want error %v", tt.applied, err, tt.wantErr)
		}
		if errors.Is(err, ErrSchemaTooNew) != tt.tooNew {
			t.Errorf("checkHistory(%v) = %v, want ErrSchemaTooNew %v", tt.applied, err, tt.tooNew)
		}
	}
}
