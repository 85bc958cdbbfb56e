package relay

import (
	"sync"
	"time"
)

// tokenCache remembers the sink tokens the relay has accepted or handed out
// (by SHA-256), so that a sink request does not read the store to check its
// credential: that read, a SQLite read transaction of its own, was a fifth
// of a sink request's CPU. Only valid tokens are kept, each until it
// expires; tokens the store drops beyond SinkTokensPerBinding are removed
// as it reports them. A binding deleted with tokens still cached is caught
// when its event is appended (410).
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]cachedToken
}

type cachedToken struct {
	bindingID string
	expires   time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]cachedToken)}
}

// valid reports whether hash is a cached token of bindingID unexpired at now.
func (c *tokenCache) valid(hash []byte, bindingID string, now time.Time) bool {
	c.mu.Lock()
	e, ok := c.entries[[32]byte(hash)]
	c.mu.Unlock()
	return ok && e.bindingID == bindingID && now.Before(e.expires)
}

// add keeps a valid token; a full cache starts over (what it held is read
// from the store again).
func (c *tokenCache) add(hash []byte, bindingID string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		c.entries = make(map[[32]byte]cachedToken)
	}
	c.entries[[32]byte(hash)] = cachedToken{bindingID: bindingID, expires: expires}
}

func (c *tokenCache) remove(hashes [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hashes {
		if len(h) == 32 {
			delete(c.entries, [32]byte(h))
		}
	}
}
