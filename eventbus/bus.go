// Package eventbus carries state changes between parts of callpath that do
// not know each other: the upstream registration client publishes, the
// CAMARA adapter (registration-ends events) and metrics subscribe.
package eventbus

import "sync"

// Bus delivers each published event to every subscriber, synchronously and
// in publication order per publisher. Handlers must not block: they record
// or hand over (to a store, an outbox, a channel they drain), since a
// publisher may be on a socket's read loop.
type Bus[E any] struct {
	mu       sync.RWMutex
	next     int
	handlers map[int]func(E)
	order    []int
}

// Subscribe adds h; the returned function removes it.
func (b *Bus[E]) Subscribe(h func(E)) (unsubscribe func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handlers == nil {
		b.handlers = make(map[int]func(E))
	}
	id := b.next
	b.next++
	b.handlers[id] = h
	b.order = append(b.order, id)
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.handlers, id)
		for i, x := range b.order {
			if x == id {
				b.order = append(b.order[:i:i], b.order[i+1:]...)
				break
			}
		}
	}
}

// Publish hands e to every subscriber, in the order they subscribed.
func (b *Bus[E]) Publish(e E) {
	b.mu.RLock()
	hs := make([]func(E), 0, len(b.order))
	for _, id := range b.order {
		hs = append(hs, b.handlers[id])
	}
	b.mu.RUnlock()
	for _, h := range hs {
		h(e)
	}
}
