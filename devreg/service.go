package devreg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Tx is one store transaction: the registration changes and the events
// they cause are committed together.
type Tx interface {
	Put(r Registration) error
	// Delete removes registration id, and with it whatever served it
	// alone (in r2.2, the subscriptions that name it).
	Delete(id string) error
	// DeleteDevice deletes, as Delete does, the registrations device holds
	// for number, and returns their ids.
	DeleteDevice(number, device string) ([]string, error)
	// Ended records the registration-ends event of r (reason, at) for the
	// subscribers of r.
	Ended(r Registration, reason string, at time.Time) error
}

// Store keeps the registrations (the app adapts store.DB).
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	Get(ctx context.Context, id string) (Registration, bool, error)
	OfNumber(ctx context.Context, number string) ([]Registration, error)
	Expired(ctx context.Context, now time.Time) ([]Registration, error)
	All(ctx context.Context) ([]Registration, error)
}

// Upstream registers numbers at the telco's registrar when their range
// needs it (upstream.Accounts does).
type Upstream interface {
	// Activate registers the number (again: a refresh) if its range needs a
	// SIP registration and an account is stored; it reports whether it did.
	Activate(ctx context.Context, number string) (bool, error)
	// Deactivate un-registers the number.
	Deactivate(ctx context.Context, number string) error
}

// Policy bounds the lifetime of a registration.
type Policy struct {
	DefaultTTL time.Duration // when the device asks for none
	MinTTL     time.Duration // a shorter request is OUT_OF_RANGE
	MaxTTL     time.Duration // a longer request is capped
}

// Service runs the registrations.
type Service struct {
	Store    Store
	Upstream Upstream // nil: every number is routed
	Policy   Policy
	Now      func() time.Time
	// Ended, if set, is called after a transaction that ended or removed a
	// registration has committed (it wakes the deliverer for the events
	// that caused).
	Ended func()

	// locks serialise the changes of one number (its rows and its upstream
	// registration follow each other); other numbers go in parallel.
	locks [64]sync.Mutex
	index liveIndex
}

// lock takes number's lock and returns its unlock.
func (s *Service) lock(number string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(number))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// ValidDeviceID reports whether id is a UUID in its canonical 36-character
// form (deviceId, CAMARA; r2.2's "pattern: uuid" means format uuid).
func ValidDeviceID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// expiry is the end of a registration asked for requested (zero: none) at
// now: the default, capped at the maximum, refused below the minimum.
func (s *Service) expiry(now, requested time.Time) (time.Time, error) {
	if requested.IsZero() {
		return now.Add(s.Policy.DefaultTTL), nil
	}
	if requested.Before(now.Add(s.Policy.MinTTL)) {
		return time.Time{}, fmt.Errorf("%w: at least %s from now", ErrOutOfRange, s.Policy.MinTTL)
	}
	if max := now.Add(s.Policy.MaxTTL); requested.After(max) {
		return max, nil
	}
	return requested, nil
}

// Create registers deviceID for number. A registration the same device
// already holds for the number is replaced (r2.2: the gateway cleans up a
// device's stale session when it registers again).
func (s *Service) Create(ctx context.Context, subject, number, deviceID string, requested time.Time) (Registration, error) {
	if number == "" {
		return Registration{}, ErrNoNumber
	}
	if !ValidDeviceID(deviceID) {
		return Registration{}, ErrInvalidDevice
	}
	now := s.now()
	exp, err := s.expiry(now, requested)
	if err != nil {
		return Registration{}, err
	}
	defer s.lock(number)()
	// Version 7: time-ordered ids keep the primary-key index append-only.
	r := Registration{ID: uuid.Must(uuid.NewV7()).String(), DeviceID: strings.ToLower(deviceID), PhoneNumber: number, Subject: subject,
		CreatedAt: now, ExpiresAt: exp}
	if s.Upstream != nil {
		if r.Upstream, err = s.Upstream.Activate(ctx, number); err != nil {
			return Registration{}, fmt.Errorf("upstream registration: %w", err)
		}
	}
	var replaced []string
	err = s.Store.Update(ctx, func(tx Tx) error {
		var err error
		if replaced, err = tx.DeleteDevice(number, r.DeviceID); err != nil {
			return err
		}
		return tx.Put(r)
	})
	if err != nil {
		return Registration{}, err
	}
	for _, id := range replaced {
		s.index.remove(number, id)
	}
	s.index.put(r)
	if len(replaced) > 0 {
		s.ended()
	}
	return r, nil
}

// Get returns number's registration id; another number's is ErrNotFound.
func (s *Service) Get(ctx context.Context, number, id string) (Registration, error) {
	r, ok, err := s.Store.Get(ctx, id)
	switch {
	case err != nil:
		return Registration{}, err
	case !ok || r.PhoneNumber != number || !r.ExpiresAt.After(s.now()):
		return Registration{}, ErrNotFound
	}
	return r, nil
}

// Refresh extends a live registration: from now, not from its old expiry
// (webrtc-registration r2.2's refresh algorithm).
func (s *Service) Refresh(ctx context.Context, number, id string, requested time.Time) (Registration, error) {
	defer s.lock(number)()
	r, err := s.Get(ctx, number, id)
	if err != nil {
		return Registration{}, err
	}
	now := s.now()
	if r.ExpiresAt, err = s.expiry(now, requested); errors.Is(err, ErrOutOfRange) {
		// r2.2: a refresh asking for less than the minimum gets the
		// server's own policy rather than an error.
		r.ExpiresAt, err = s.expiry(now, time.Time{})
	}
	if err != nil {
		return Registration{}, err
	}
	if r.Upstream && s.Upstream != nil {
		if _, err := s.Upstream.Activate(ctx, number); err != nil {
			return Registration{}, fmt.Errorf("upstream registration: %w", err)
		}
	}
	if err := s.Store.Update(ctx, func(tx Tx) error { return tx.Put(r) }); err != nil {
		return Registration{}, err
	}
	s.index.put(r)
	return r, nil
}

// Delete ends a registration at the device's request (no event: the spec
// has no reason for it).
func (s *Service) Delete(ctx context.Context, number, id string) error {
	defer s.lock(number)()
	r, err := s.Get(ctx, number, id)
	if err != nil {
		return err
	}
	if err := s.Store.Update(ctx, func(tx Tx) error { return tx.Delete(r.ID) }); err != nil {
		return err
	}
	s.index.remove(r.PhoneNumber, r.ID)
	s.ended()
	return s.releaseUpstream(ctx, r)
}

// Sweep ends the registrations expired by now, each with its
// registration-ends event (REGISTRATION_EXPIRED).
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	expired, err := s.Store.Expired(ctx, now)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, r := range expired {
		unlock := s.lock(r.PhoneNumber)
		if err := s.end(ctx, r, ReasonExpired, now); err != nil {
			errs = append(errs, err)
		}
		unlock()
	}
	return len(expired) - len(errs), errors.Join(errs...)
}

// NetworkEnded ends every registration of number the network dropped (the
// telco's registrar refused or lost the number's binding):
// NETWORK_TERMINATED.
func (s *Service) NetworkEnded(ctx context.Context, number string) (int, error) {
	defer s.lock(number)()
	regs, err := s.Store.OfNumber(ctx, number)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, r := range regs {
		if !r.Upstream {
			continue
		}
		r.Upstream = false // the binding is gone already: nothing to un-register
		if err := s.end(ctx, r, ReasonNetworkTerminated, s.now()); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// end removes r and records its registration-ends event in one
// transaction, then releases the upstream registration if r was its last.
// Called with r's number locked.
func (s *Service) end(ctx context.Context, r Registration, reason string, at time.Time) error {
	// The event goes first: deleting r also ends the subscriptions that
	// name it, and they must still be there to be told why.
	if err := s.Store.Update(ctx, func(tx Tx) error {
		if err := tx.Ended(r, reason, at); err != nil {
			return err
		}
		return tx.Delete(r.ID)
	}); err != nil {
		return err
	}
	s.index.remove(r.PhoneNumber, r.ID)
	s.ended()
	return s.releaseUpstream(ctx, r)
}

// ended runs the Ended hook, if any.
func (s *Service) ended() {
	if s.Ended != nil {
		s.Ended()
	}
}

// releaseUpstream un-registers r's number when no other registration of it
// needs the binding. Called with r's number locked.
func (s *Service) releaseUpstream(ctx context.Context, r Registration) error {
	if !r.Upstream || s.Upstream == nil {
		return nil
	}
	rest, err := s.Store.OfNumber(ctx, r.PhoneNumber)
	if err != nil {
		return err
	}
	for _, o := range rest {
		if o.Upstream && o.ExpiresAt.After(s.now()) {
			return nil
		}
	}
	return s.Upstream.Deactivate(ctx, r.PhoneNumber)
}
