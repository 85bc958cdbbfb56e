package auth

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// Cached remembers the claims of tokens Inner has verified, until each
// token expires: a client sends the same bearer token with every request,
// and checking its signature each time (an Ed25519 or RSA verify) was a
// fifth of an API request's CPU. Only successes are kept, keyed by the
// token's SHA-256; an expired entry is checked again (and fails). The
// cache is bounded: when full it starts over.
type Cached struct {
	Inner TokenVerifier
	Max   int // entries; 0: 10,000
	Now   func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]Claims
}

// Verify returns the cached claims of a token still valid, or asks Inner.
func (c *Cached) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" || len(token) > maxTokenLength {
		return Claims{}, ErrUnauthenticated
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	cl, ok := c.entries[key]
	c.mu.Unlock()
	if ok && !cl.Expiry.IsZero() && now().Before(cl.Expiry) {
		return cl, nil
	}
	cl, err := c.Inner.Verify(ctx, token)
	if err != nil || cl.Expiry.IsZero() {
		return cl, err
	}
	max := c.Max
	if max <= 0 {
		max = 10000
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= max {
		c.entries = make(map[[32]byte]Claims, max)
	}
	c.entries[key] = cl
	c.mu.Unlock()
	return cl, nil
}
