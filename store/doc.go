// Package store is the SQLite implementation of the repositories that
// callpath's domain packages declare. It owns the database file, its schema
// (versioned migrations embedded in the binary) and the write paths that have
// to keep up with the B2BUA, such as the asynchronous CDR writer.
//
// # Time format
//
// Every timestamp is stored as RFC 3339 text in UTC with exactly nine
// fractional digits, for example "2024-05-01T12:00:03.120000000Z". The fixed
// width makes text order equal to time order, so indexes and ORDER BY work on
// the raw column; operators can read the values in the sqlite3 shell;
// SQLite's date functions accept them; and PostgreSQL casts them to
// timestamptz as they are, which keeps a later port to a real timestamp
// column a one-line USING clause.
package store
