package devreg

import (
	"context"
	"sync"
	"time"
)

// liveIndex keeps the expiry of every registration by number in memory,
// so that the call path can ask whether a number has a live device
// (routing.DevicesFirst, on every call) without a store read. It is filled
// from the store by Service.Load and follows every change the service
// makes. (With several nodes, a change made on one must reach the others'
// indexes: DESIGN §8's event bus.)
type liveIndex struct {
	mu       sync.RWMutex
	byNumber map[string]map[string]time.Time // number → registration id → expiry
}

func (x *liveIndex) put(r Registration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byNumber == nil {
		x.byNumber = map[string]map[string]time.Time{}
	}
	regs := x.byNumber[r.PhoneNumber]
	if regs == nil {
		regs = map[string]time.Time{}
		x.byNumber[r.PhoneNumber] = regs
	}
	regs[r.ID] = r.ExpiresAt
}

func (x *liveIndex) remove(number, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	regs := x.byNumber[number]
	delete(regs, id)
	if len(regs) == 0 {
		delete(x.byNumber, number)
	}
}

func (x *liveIndex) has(number string, now time.Time) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, exp := range x.byNumber[number] {
		if exp.After(now) {
			return true
		}
	}
	return false
}

// Load fills the live-number index from the store; call it once before
// the call path asks HasDevice.
func (s *Service) Load(ctx context.Context) error {
	regs, err := s.Store.All(ctx)
	if err != nil {
		return err
	}
	for _, r := range regs {
		s.index.put(r)
	}
	return nil
}

// HasDevice reports whether number has a registration that has not
// expired (routing.LiveDevices). No I/O.
func (s *Service) HasDevice(number string) bool { return s.index.has(number, s.now()) }

// Live reports whether registration id of number is live.
func (s *Service) Live(ctx context.Context, number, id string) bool {
	_, err := s.Get(ctx, number, id)
	return err == nil
}
