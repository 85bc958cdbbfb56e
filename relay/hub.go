package relay

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// hub knows the open socket of each binding and counts admissions.
type hub struct {
	mu       sync.RWMutex
	sessions map[string]*session // by binding id

	open atomic.Int64 // admitted sockets, handshakes in progress included
	max  int64

	// postLocks serialise the sink requests of a binding, so that its
	// events are committed and offered to its socket in the same order.
	// Striped: a lock per binding would be a map to grow and clean.
	postLocks [256]sync.Mutex
	seed      maphash.Seed
}

func newHub(maxConnections int) *hub {
	return &hub{sessions: make(map[string]*session), max: int64(maxConnections), seed: maphash.MakeSeed()}
}

// admit takes a socket slot; false when MaxConnections are open.
func (h *hub) admit() bool {
	if h.open.Add(1) > h.max {
		h.open.Add(-1)
		return false
	}
	return true
}

func (h *hub) release() { h.open.Add(-1) }

// attach makes s the binding's socket and returns the one it replaces.
func (h *hub) attach(s *session) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.sessions[s.bindingID]
	h.sessions[s.bindingID] = s
	return old
}

// detach forgets s, unless another socket has taken its binding since.
func (h *hub) detach(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.bindingID] == s {
		delete(h.sessions, s.bindingID)
	}
}

// session is the binding's open socket, or nil.
func (h *hub) session(bindingID string) *session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sessions[bindingID]
}

func (h *hub) all() []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		out = append(out, s)
	}
	return out
}

func (h *hub) postLock(bindingID string) *sync.Mutex {
	return &h.postLocks[maphash.String(h.seed, bindingID)%uint64(len(h.postLocks))]
}
