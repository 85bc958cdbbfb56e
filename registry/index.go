package registry

import (
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
)

const indexShards = 256

// index is the in-memory copy of the registrations, by number. Sharded with
// read-write locks: every call reads it twice, provisioning writes it at
// up to a million refreshes an hour.
type index struct {
	seed   maphash.Seed
	shards [indexShards]indexShard
	n      atomic.Int64

	tasMu sync.Mutex
	tas   map[string]int // TAS sip_uri -> registrations naming it
	// tasVersion changes whenever a TAS URI joins or leaves tas, so that
	// readers of the set (TASSources) notice without being told.
	tasVersion atomic.Uint64
}

type indexShard struct {
	mu sync.RWMutex
	m  map[string]Registration
}

func newIndex() *index {
	x := &index{seed: maphash.MakeSeed(), tas: make(map[string]int)}
	for i := range x.shards {
		x.shards[i].m = make(map[string]Registration)
	}
	return x
}

func (x *index) shard(number string) *indexShard {
	return &x.shards[maphash.String(x.seed, number)%indexShards]
}

func (x *index) get(number string) (Registration, bool) {
	s := x.shard(number)
	s.mu.RLock()
	reg, ok := s.m[number]
	s.mu.RUnlock()
	return reg, ok
}

func (x *index) put(reg Registration) {
	s := x.shard(reg.PhoneNumber)
	s.mu.Lock()
	old, existed := s.m[reg.PhoneNumber]
	if !existed {
		x.n.Add(1)
	}
	s.m[reg.PhoneNumber] = reg
	s.mu.Unlock()
	x.tasMu.Lock()
	if existed {
		x.dropTAS(old.SIPURI)
	}
	if x.tas[reg.SIPURI] == 0 {
		x.tasVersion.Add(1)
	}
	x.tas[reg.SIPURI]++
	x.tasMu.Unlock()
}

// dropTAS counts one registration less for uri. Called with tasMu held.
func (x *index) dropTAS(uri string) {
	if x.tas[uri] <= 1 {
		delete(x.tas, uri)
		x.tasVersion.Add(1)
		return
	}
	x.tas[uri]--
}

// tasURIs returns the distinct TAS URIs registered.
func (x *index) tasURIs() []string {
	x.tasMu.Lock()
	defer x.tasMu.Unlock()
	out := make([]string, 0, len(x.tas))
	for uri := range x.tas {
		out = append(out, uri)
	}
	sort.Strings(out)
	return out
}

func (x *index) remove(number string) {
	s := x.shard(number)
	s.mu.Lock()
	old, ok := s.m[number]
	if ok {
		delete(s.m, number)
		x.n.Add(-1)
	}
	s.mu.Unlock()
	if ok {
		x.tasMu.Lock()
		x.dropTAS(old.SIPURI)
		x.tasMu.Unlock()
	}
}

func (x *index) len() int { return int(x.n.Load()) }

// collect returns the registrations keep selects.
func (x *index) collect(keep func(Registration) bool) []Registration {
	var out []Registration
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		for _, reg := range s.m {
			if keep(reg) {
				out = append(out, reg)
			}
		}
		s.mu.RUnlock()
	}
	return out
}

func sortByNumber(regs []Registration) {
	sort.Slice(regs, func(i, j int) bool { return regs[i].PhoneNumber < regs[j].PhoneNumber })
}
