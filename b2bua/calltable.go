package b2bua

import (
	"hash/maphash"
	"sync"
)

const callTableShards = 64

// callTable finds the leg an in-dialog request belongs to, by Call-ID and our
// tag. It is sharded because every SIP message of every call looks it up, and
// one lock would serialise the whole gateway.
type callTable struct {
	seed   maphash.Seed
	shards [callTableShards]callShard
}

type callShard struct {
	mu   sync.RWMutex
	legs map[string]*leg
}

func newCallTable() *callTable {
	t := &callTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].legs = make(map[string]*leg)
	}
	return t
}

func (t *callTable) shard(key string) *callShard {
	return &t.shards[maphash.String(t.seed, key)%callTableShards]
}

func (t *callTable) add(l *leg) { t.addKey(l.key, l) }

// addKey files a leg under an extra key (the caller's Call-ID and From tag,
// for merged-request detection).
func (t *callTable) addKey(key string, l *leg) {
	s := t.shard(key)
	s.mu.Lock()
	s.legs[key] = l
	s.mu.Unlock()
}

func (t *callTable) get(key string) *leg {
	s := t.shard(key)
	s.mu.RLock()
	l := s.legs[key]
	s.mu.RUnlock()
	return l
}

func (t *callTable) remove(key string) {
	s := t.shard(key)
	s.mu.Lock()
	delete(s.legs, key)
	s.mu.Unlock()
}

// calls returns every call once (through its incoming leg).
func (t *callTable) calls() []*call {
	var out []*call
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for key, l := range s.legs {
			if l.side == sideUAS && key == l.key {
				out = append(out, l.call)
			}
		}
		s.mu.RUnlock()
	}
	return out
}
