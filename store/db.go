package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Defaults for Options.
const (
	DefaultBusyTimeout = 5 * time.Second
	minReadConns       = 4
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection (another process, an operator's sqlite3 shell) before it
	// fails with SQLITE_BUSY. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReadConns caps the reader pool. Zero means max(4, GOMAXPROCS).
	MaxReadConns int
	// Logger receives migration and shutdown messages. Nil means the logrus
	// standard logger.
	Logger *logrus.Entry
}

func (o Options) withDefaults() Options {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.MaxReadConns <= 0 {
		o.MaxReadConns = max(minReadConns, runtime.GOMAXPROCS(0))
	}
	if o.Logger == nil {
		o.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
	return o
}

// DB is an open callpath database.
//
// SQLite lets many connections read at once but only one write at a time;
// a second writer does not queue inside SQLite, it spins on busy_timeout and
// can still fail with SQLITE_BUSY. So DB keeps two database/sql pools on the
// same file: write has exactly one connection, which turns SQLite's file lock
// into an ordinary Go-side queue (database/sql hands the connection out in
// turn), and read is a pool of query-only connections that, thanks to WAL,
// never block the writer and are never blocked by it.
//
// SQLite's own busy wait cannot be interrupted: a statement waiting for a
// lock ignores its context until busy_timeout has passed. The writer, which
// must honour CDRWriter.Close's deadline, therefore gets a short busy_timeout
// (writeBusySlice) and its write transactions are begun by beginWrite, which
// retries in Go, checking the context between slices, until
// Options.BusyTimeout has passed.
type DB struct {
	write       *sql.DB
	read        *sql.DB
	log         *logrus.Entry
	busyTimeout time.Duration

	// insertCDRs[i] inserts 1<<i records; see InsertCDRs.
	insertCDRs []*sql.Stmt
	insertMu   sync.Mutex
	insertArgs cdrArgs

	readStmts, writeStmts stmtCache
	commits               commitQueue
}

// writeBusySlice is the writer connection's busy_timeout: how long it can
// wait for a lock without looking at its context.
const writeBusySlice = 50 * time.Millisecond

// Writer connection settings; see dsn.
const (
	writeCacheKiB      = 64 << 10
	walCheckpointPages = 10000
)

// Open opens the SQLite database at path, creating the file and its parent
// directory if needed, and brings its schema up to date. It refuses a
// database whose schema is newer than this binary knows (ErrSchemaTooNew).
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	log := opts.Logger.WithField("db", path)

	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}

	write, err := sql.Open("sqlite", dsn(path, opts, true))
	if err != nil {
		return nil, fmt.Errorf("open database writer: %w", err)
	}
	// One connection, kept forever: see the DB comment. Keeping it open also
	// keeps the WAL index warm instead of rebuilding it on every reconnect.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	db := &DB{write: write, log: log, busyTimeout: opts.BusyTimeout}

	if err := db.setUp(ctx); err != nil {
		_ = write.Close()
		return nil, err
	}
	if err := db.prepareInserts(ctx); err != nil {
		db.closeStmts()
		_ = write.Close()
		return nil, err
	}

	read, err := sql.Open("sqlite", dsn(path, opts, false))
	if err != nil {
		db.closeStmts()
		_ = write.Close()
		return nil, fmt.Errorf("open database readers: %w", err)
	}
	read.SetMaxOpenConns(opts.MaxReadConns)
	read.SetMaxIdleConns(opts.MaxReadConns)
	if err := read.PingContext(ctx); err != nil {
		_ = read.Close()
		db.closeStmts()
		_ = write.Close()
		return nil, fmt.Errorf("open database readers: %w", err)
	}
	db.read = read
	return db, nil
}

// setUp connects the writer, which applies the pragmas, checks that WAL is
// in effect and migrates the schema.
func (db *DB) setUp(ctx context.Context) error {
	// Connecting switches a new file to WAL, which needs the write lock, so
	// a bad path or a busy file fails Open here rather than the first query.
	if err := db.retryBusy(ctx, func() error { return db.write.PingContext(ctx) }); err != nil {
		return fmt.Errorf("open database writer: %w", err)
	}
	// journal_mode=WAL silently stays on the old mode where WAL is
	// unsupported (some network file systems). Everything here relies on
	// readers not blocking the writer, so that must be an error.
	var mode string
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("database journal mode is %q, want wal", mode)
	}
	return db.migrate(ctx)
}

// beginWrite begins a write transaction (BEGIN IMMEDIATE, see dsn), waiting
// for the write lock as the DB comment describes.
func (db *DB) beginWrite(ctx context.Context) (*sql.Tx, error) {
	var tx *sql.Tx
	err := db.retryBusy(ctx, func() error {
		var err error
		tx, err = db.write.BeginTx(ctx, nil)
		return err
	})
	return tx, err
}

// retryBusy calls fn until it returns something other than SQLITE_BUSY, ctx
// ends, or Options.BusyTimeout has passed.
func (db *DB) retryBusy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(db.busyTimeout)
	// A pause between attempts keeps this from spinning when SQLite reports
	// BUSY without waiting, as it does in a few deadlock-avoidance cases.
	const pause = 5 * time.Millisecond
	for {
		err := fn()
		if err == nil || !isBusy(err) {
			return err
		}
		if !time.Now().Add(pause).Before(deadline) {
			return fmt.Errorf("database locked for %v: %w", db.busyTimeout, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w while waiting for the database lock: %w", ctx.Err(), err)
		}
	}
}

func isBusy(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_BUSY }

func isConstraint(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT }

// sqliteCode returns the primary SQLite result code carried by err, or -1.
func sqliteCode(err error) int {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return -1
	}
	// Extended codes such as SQLITE_CONSTRAINT_PRIMARYKEY carry the primary
	// code in their low byte.
	return se.Code() & 0xff
}

// checkPath rejects names the driver would not treat as a plain file path.
func checkPath(path string) error {
	switch {
	case path == "":
		return errors.New("database path is empty")
	case strings.Contains(path, "?"):
		// The driver cuts the DSN at the first '?' and would drop the rest
		// of the name along with our pragmas.
		return fmt.Errorf("database path %q contains '?'", path)
	case strings.HasPrefix(path, "file:"), strings.HasPrefix(path, ":memory:"):
		// A URI or an in-memory database would not be shared between the
		// writer and the reader pool.
		return fmt.Errorf("database path %q is not a plain file path", path)
	}
	return nil
}

// dsn builds the driver name for one of the two pools. The driver runs each
// _pragma on every new connection, so pooled connections cannot come up with
// different settings.
func dsn(path string, opts Options, writer bool) string {
	busy := opts.BusyTimeout
	if writer {
		busy = writeBusySlice
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	if writer {
		// journal_mode is persistent in the file; setting it on the writer,
		// which connects first, is enough for every later connection.
		q.Add("_pragma", "journal_mode(WAL)")
		// In WAL mode NORMAL fsyncs only at checkpoints: a power cut can lose
		// the last commits but never corrupts the file. CDRs are
		// accounting data, not ledger entries, and FULL would cost an fsync
		// per batch.
		q.Add("_pragma", "synchronous(NORMAL)")
		// A CDR batch dirties about one page per record in each index keyed
		// by a random value. The writer's page cache must hold all of a
		// transaction's dirty pages: past cache_size SQLite spills them to
		// the WAL before the commit and writes many of them twice, and the
		// default of 2 MiB made that happen on every batch. It also keeps
		// those indexes' pages between batches instead of reading them back
		// from the file. Pages are allocated as they are used, up to this.
		q.Add("_pragma", "cache_size(-"+strconv.Itoa(writeCacheKiB)+")")
		// Checkpoint after about 40 MiB of WAL rather than the default 4 MiB.
		// A checkpoint copies every page in the WAL to the database file and
		// fsyncs it; a page rewritten by several batches is copied once per
		// checkpoint, so a longer WAL means fewer copies. The cost is disk
		// space for the WAL and a longer replay on open after a crash.
		q.Add("_pragma", "wal_autocheckpoint("+strconv.Itoa(walCheckpointPages)+")")
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// waits on busy_timeout at its start instead of failing when it
		// first writes after having read.
		q.Set("_txlock", "immediate")
	} else {
		// Readers must never write; this turns a bug into an error.
		q.Add("_pragma", "query_only(1)")
	}
	return path + "?" + q.Encode()
}

// Ping reports whether both pools can reach the database, for readiness
// probes.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database writer: %w", err)
	}
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database readers: %w", err)
	}
	return nil
}

// Close checkpoints the write-ahead log into the database file and closes
// both pools. Close any CDRWriter using db first: its queued records are
// lost once db is closed.
func (db *DB) Close() error {
	// Readers go first: a checkpoint cannot move past pages a reader may
	// still need, and closing them lets TRUNCATE empty the WAL completely.
	readErr := db.read.Close()
	db.closeStmts()

	// Folding the WAL back leaves a self-contained file for backups and
	// copies. SQLite also does this when the last connection closes, but
	// not when another process still has the file open.
	var ckptErr error
	var busy, logPages, moved int
	if err := db.write.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &moved); err != nil {
		ckptErr = fmt.Errorf("checkpoint wal: %w", err)
	} else if busy != 0 {
		// Another process is reading or writing; it, or the next open,
		// finishes the checkpoint. Nothing is lost either way.
		db.log.WithFields(logrus.Fields{"wal_pages": logPages, "checkpointed": moved}).
			Info("wal checkpoint incomplete at close: database in use elsewhere")
	}
	writeErr := db.write.Close()

	if readErr != nil {
		readErr = fmt.Errorf("close database readers: %w", readErr)
	}
	if writeErr != nil {
		writeErr = fmt.Errorf("close database writer: %w", writeErr)
	}
	return errors.Join(readErr, ckptErr, writeErr)
}

// closeStmts finalises the prepared statements; errors are of no interest,
// as the connection is closed next.
func (db *DB) closeStmts() {
	for _, s := range db.insertCDRs {
		if s != nil {
			_ = s.Close()
		}
	}
	db.insertCDRs = nil
	db.readStmts.close()
	db.writeStmts.close()
}

// execer is what a write transaction offers its body.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writeTx runs fn in a write transaction and commits it, or rolls it back
// when fn fails.
func (db *DB) writeTx(ctx context.Context, fn func(execer) error) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
