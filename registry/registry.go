package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Store keeps registrations durably. Implementations: store.DB (SQLite).
type Store interface {
	// PutRegistration inserts or replaces the registration of its number.
	PutRegistration(ctx context.Context, r Registration) error
	// DeleteRegistration removes the registration of number.
	DeleteRegistration(ctx context.Context, number string) error
	// ActiveRegistrations returns every registration that expires after now.
	ActiveRegistrations(ctx context.Context, now time.Time) ([]Registration, error)
}

// Principal is who asks: the subject of an OAuth2 token.
type Principal struct {
	// Subject identifies the client or user; it owns what it creates.
	Subject string
	// PhoneNumber is the user's number for a user token; empty for a
	// client (client-credentials) token.
	PhoneNumber string
}

// ErrForbidden is an operation on a number the principal may not manage:
// another owner's registration, or not the number of a user token.
var ErrForbidden = errors.New("not allowed to manage the registration of this phone number")

// ErrNotFound is a delete of a number that has no registration.
var ErrNotFound = errors.New("no registration for this phone number")

// Config holds the registry's policy.
type Config struct {
	TTL           time.Duration // how long a registration lives after its last upsert
	AllowPlainSIP bool          // accept sip: TAS URIs (labs, tests), not only sips:
}

// Registry validates and applies registrations, keeps them in the store,
// and answers the call path's lookups from memory.
type Registry struct {
	cfg   Config
	store Store
	now   func() time.Time

	mu    sync.Mutex // serialises writers, so that store and index agree
	index *index
}

// New loads the active registrations from store.
func New(ctx context.Context, cfg Config, store Store, now func() time.Time) (*Registry, error) {
	if cfg.TTL <= 0 {
		return nil, errors.New("registry: TTL must be positive")
	}
	if now == nil {
		now = time.Now
	}
	regs, err := store.ActiveRegistrations(ctx, now())
	if err != nil {
		return nil, fmt.Errorf("load registrations: %w", err)
	}
	r := &Registry{cfg: cfg, store: store, now: now, index: newIndex()}
	for _, reg := range regs {
		r.index.put(reg)
	}
	return r, nil
}

// TTL is the lifetime an upsert grants.
func (r *Registry) TTL() time.Duration { return r.cfg.TTL }

// Normalize checks a registration as received and returns it in stored
// form, with its number decided by the principal: a user token's own
// number, or the request's number for a client token.
func (r *Registry) Normalize(p Principal, reg Registration) (Registration, error) {
	switch {
	case p.PhoneNumber != "" && reg.PhoneNumber != "" && reg.PhoneNumber != p.PhoneNumber:
		return reg, fmt.Errorf("%w: a user token manages its own number only", ErrForbidden)
	case p.PhoneNumber != "":
		reg.PhoneNumber = p.PhoneNumber
	case reg.PhoneNumber == "":
		return reg, reject("phone_number is required with a client token")
	}
	if !ValidE164(reg.PhoneNumber) {
		return reg, reject(fmt.Sprintf("phone_number %q is not an E.164 number such as +4790000001", reg.PhoneNumber))
	}
	if reg.RouteType == RouteUnspecified {
		return reg, reject("route_type is required")
	}
	if _, ok := routeNames[reg.RouteType]; !ok {
		return reg, reject(fmt.Sprintf("route_type %d is not a known route type", int32(reg.RouteType)))
	}
	u, err := ParseTASURI(reg.SIPURI, r.cfg.AllowPlainSIP)
	if err != nil {
		return reg, err
	}
	reg.SIPURI = u.String()
	if !ValidPrefix(reg.MOPrefix) || !ValidPrefix(reg.MTPrefix) {
		return reg, reject("prefixes may hold up to 8 of 0-9, +, * and #")
	}
	reg.Owner = p.Subject
	return reg, nil
}

// Upsert creates or replaces the registration of a number and starts its
// lifetime again. It returns the stored registration.
func (r *Registry) Upsert(ctx context.Context, p Principal, in Registration) (Registration, error) {
	reg, err := r.Normalize(p, in)
	if err != nil {
		return reg, err
	}
	now := r.now()
	reg.UpdatedAt, reg.ExpiresAt = now, now.Add(r.cfg.TTL)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.lookup(reg.PhoneNumber, now); ok && cur.Owner != reg.Owner {
		return reg, ErrForbidden
	}
	if err := r.store.PutRegistration(ctx, reg); err != nil {
		return reg, fmt.Errorf("store registration: %w", err)
	}
	r.index.put(reg)
	return reg, nil
}

// Delete removes the registration of a number; the request's sip_uri must
// be the registered one.
func (r *Registry) Delete(ctx context.Context, p Principal, in Registration) error {
	if in.RouteType == RouteUnspecified {
		in.RouteType = RouteLoop // not part of the match; Normalize wants one
	}
	reg, err := r.Normalize(p, in)
	if err != nil {
		return err
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.lookup(reg.PhoneNumber, now)
	switch {
	case !ok:
		return ErrNotFound
	case cur.Owner != reg.Owner:
		return ErrForbidden
	case cur.SIPURI != reg.SIPURI:
		return reject("sip_uri does not match the registered one")
	}
	if err := r.store.DeleteRegistration(ctx, reg.PhoneNumber); err != nil {
		return fmt.Errorf("delete registration: %w", err)
	}
	r.index.remove(reg.PhoneNumber)
	return nil
}

// Lookup returns the active registration of number, from memory: the call
// path asks for both parties of every call.
func (r *Registry) Lookup(number string) (Registration, bool) {
	return r.lookup(number, r.now())
}

func (r *Registry) lookup(number string, now time.Time) (Registration, bool) {
	reg, ok := r.index.get(number)
	if !ok || !reg.Active(now) {
		return Registration{}, false
	}
	return reg, true
}

// Get returns the active registration of number if p may see it.
func (r *Registry) Get(p Principal, number string) (Registration, error) {
	reg, ok := r.Lookup(number)
	if !ok || reg.Owner != p.Subject {
		// Another owner's registration is reported as absent: a subscriber
		// never learns about another's data.
		return Registration{}, ErrNotFound
	}
	return reg, nil
}

// List returns p's active registrations, ordered by number.
func (r *Registry) List(p Principal) []Registration {
	now := r.now()
	out := r.index.collect(func(reg Registration) bool { return reg.Owner == p.Subject && reg.Active(now) })
	sortByNumber(out)
	return out
}

// TASURIs returns the distinct TAS URIs of the registrations held (expired
// ones not yet swept included).
func (r *Registry) TASURIs() []string { return r.index.tasURIs() }

// TASVersion changes whenever the set TASURIs returns changes.
func (r *Registry) TASVersion() uint64 { return r.index.tasVersion.Load() }

// Len is the number of registrations held, expired ones not yet swept
// included.
func (r *Registry) Len() int { return r.index.len() }

// Sweep forgets the registrations that expired by now, in memory and in the
// store. Expired ones stop acting at once anyway (Lookup checks); this
// frees them.
func (r *Registry) Sweep(ctx context.Context) (int, error) {
	now := r.now()
	expired := r.index.collect(func(reg Registration) bool { return !reg.Active(now) })
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, reg := range expired {
		cur, ok := r.index.get(reg.PhoneNumber)
		if !ok || cur.Active(now) {
			continue // refreshed meanwhile
		}
		if err := r.store.DeleteRegistration(ctx, reg.PhoneNumber); err != nil {
			return n, fmt.Errorf("delete expired registration: %w", err)
		}
		r.index.remove(reg.PhoneNumber)
		n++
	}
	return n, nil
}
