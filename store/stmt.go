package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache holds statements prepared once for the hot paths: modernc's
// driver parses a statement's SQL on every Exec or Query otherwise (a
// quarter of the outbox deliverer's store time was parsing).
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// prepared returns query prepared on conn (db.read or db.write). The lock
// is not held while preparing: that waits for a connection, which a
// transaction asking cached() may hold.
func (c *stmtCache) prepared(ctx context.Context, conn *sql.DB, query string) (*sql.Stmt, error) {
	if s := c.cached(query); s != nil {
		return s, nil
	}
	s, err := conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.stmts[query]; ok {
		_ = s.Close() // prepared meanwhile by another caller
		return old, nil
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*sql.Stmt)
	}
	c.stmts[query] = s
	return s, nil
}

// cached returns query's statement if it has been prepared already.
func (c *stmtCache) cached(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stmts {
		_ = s.Close()
	}
	c.stmts = nil
}
