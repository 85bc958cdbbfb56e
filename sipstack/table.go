package sipstack

import (
	"hash/maphash"
	"sync"
)

const tableShards = 64

// txTable maps transaction keys to transactions. Every received message
// looks it up, so it is sharded: one lock would serialise the read loops.
type txTable[T comparable] struct {
	seed   maphash.Seed
	shards [tableShards]txShard[T]
}

type txShard[T comparable] struct {
	mu sync.Mutex
	m  map[string]T
}

func newTxTable[T comparable]() *txTable[T] {
	t := &txTable[T]{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]T)
	}
	return t
}

func (t *txTable[T]) shard(key string) *txShard[T] {
	return &t.shards[maphash.String(t.seed, key)%tableShards]
}

func (t *txTable[T]) get(key string) (T, bool) {
	s := t.shard(key)
	s.mu.Lock()
	v, ok := s.m[key]
	s.mu.Unlock()
	return v, ok
}

// getOrAdd returns the transaction under key, or files the one create makes;
// created says which.
func (t *txTable[T]) getOrAdd(key string, create func() T) (v T, created bool) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		return v, false
	}
	v = create()
	s.m[key] = v
	return v, true
}

// add files v under key unless the key is taken; false when it is.
func (t *txTable[T]) add(key string, v T) bool {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return false
	}
	s.m[key] = v
	return true
}

// remove deletes key if it still maps to v (a new transaction may have
// taken the key since).
func (t *txTable[T]) remove(key string, v T) {
	s := t.shard(key)
	s.mu.Lock()
	if cur, ok := s.m[key]; ok && cur == v {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

func (t *txTable[T]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// all returns every transaction (for Close).
func (t *txTable[T]) all() []T {
	var out []T
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, v := range s.m {
			out = append(out, v)
		}
		s.mu.Unlock()
	}
	return out
}
