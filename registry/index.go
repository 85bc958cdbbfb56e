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
}

type indexShard struct {
	mu sync.RWMutex
	m  map[string]Registration
}

func newIndex() *index {
	x := &index{seed: maphash.MakeSeed()}
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
	if _, ok := s.m[reg.PhoneNumber]; !ok {
		x.n.Add(1)
	}
	s.m[reg.PhoneNumber] = reg
	s.mu.Unlock()
}

func (x *index) remove(number string) {
	s := x.shard(number)
	s.mu.Lock()
	if _, ok := s.m[number]; ok {
		delete(s.m, number)
		x.n.Add(-1)
	}
	s.mu.Unlock()
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
