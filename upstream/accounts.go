package upstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Mode says how the telco reaches a number range.
type Mode string

// The modes of a number range.
const (
	ModeRouted   Mode = "routed"   // the telco routes the range to callpath: nothing to register
	ModeRegister Mode = "register" // the telco issues a SIP account per number: callpath registers it
)

// Range is how the telco reaches the numbers starting with Prefix.
type Range struct {
	Prefix    string
	Mode      Mode
	Registrar string // URI REGISTER goes to; empty: sip:<Domain>
	Domain    string // the telco's SIP domain (host of the address of record)
	Realm     string // digest realm the accounts belong to; empty: the challenge's
}

// Ranges finds a number's range by longest prefix; numbers in none are
// routed.
type Ranges struct {
	byLength []Range // longest prefix first
}

// NewRanges indexes ranges.
func NewRanges(ranges []Range) *Ranges {
	r := &Ranges{byLength: append([]Range(nil), ranges...)}
	sort.SliceStable(r.byLength, func(i, j int) bool { return len(r.byLength[i].Prefix) > len(r.byLength[j].Prefix) })
	return r
}

// Lookup returns the range of number.
func (r *Ranges) Lookup(number string) Range {
	for _, rg := range r.byLength {
		if strings.HasPrefix(number, rg.Prefix) {
			return rg
		}
	}
	return Range{Mode: ModeRouted}
}

// Credentials is the SIP account the telco issued for a number.
type Credentials struct {
	Number   string
	Username string // empty: the number
	Password string
}

// CredentialStore keeps the accounts (store.DB does).
type CredentialStore interface {
	PutCredentials(ctx context.Context, c Credentials) error
	DeleteCredentials(ctx context.Context, number string) error
	Credentials(ctx context.Context, number string) (Credentials, bool, error)
	AllCredentials(ctx context.Context) ([]Credentials, error)
}

// Accounts ties the client to the number ranges and the stored accounts:
// a number of a "register" range with an account is kept registered, from
// when the account is added (and after every restart) until it is removed.
type Accounts struct {
	Client *Client
	Ranges *Ranges
	Store  CredentialStore
}

// ErrRouted is an account for a number the telco routes to callpath: there
// is nothing to register.
var ErrRouted = errors.New("upstream: the number's range is routed to callpath, not registered")

// Put stores a number's account and registers it.
func (a *Accounts) Put(ctx context.Context, c Credentials) error {
	rg := a.Ranges.Lookup(c.Number)
	if rg.Mode != ModeRegister {
		return ErrRouted
	}
	acct := account(rg, c)
	if err := acct.validate(); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	if err := a.Store.PutCredentials(ctx, c); err != nil {
		return err
	}
	return a.Client.Register(acct)
}

// Delete un-registers a number (all: every contact of its address of
// record) and forgets its account.
func (a *Accounts) Delete(ctx context.Context, number string, all bool) error {
	if err := a.Store.DeleteCredentials(ctx, number); err != nil {
		return err
	}
	if err := a.Client.Unregister(number, all); err != nil && !errors.Is(err, ErrUnknown) {
		return err
	}
	return nil
}

// Restore registers every stored account whose number is in a register
// range (at start-up); it returns how many.
func (a *Accounts) Restore(ctx context.Context) (int, error) {
	all, err := a.Store.AllCredentials(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, c := range all {
		rg := a.Ranges.Lookup(c.Number)
		if rg.Mode != ModeRegister {
			continue
		}
		if err := a.Client.Register(account(rg, c)); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// ErrNoAccount is a number of a register range without a stored account:
// it cannot be registered at the telco.
var ErrNoAccount = errors.New("upstream: no SIP account stored for the number")

// Activate registers number (again, which refreshes the binding) when its
// range needs a registration; it reports whether the number is registered
// upstream. A register range without an account is ErrNoAccount.
func (a *Accounts) Activate(ctx context.Context, number string) (bool, error) {
	rg := a.Ranges.Lookup(number)
	if rg.Mode != ModeRegister {
		return false, nil
	}
	c, ok, err := a.Store.Credentials(ctx, number)
	switch {
	case err != nil:
		return false, err
	case !ok:
		return false, ErrNoAccount
	}
	return true, a.Client.Register(account(rg, c))
}

// Deactivate un-registers number (its account stays stored).
func (a *Accounts) Deactivate(_ context.Context, number string) error {
	if err := a.Client.Unregister(number, false); err != nil && !errors.Is(err, ErrUnknown) {
		return err
	}
	return nil
}

// Status is the registration state of a number's account.
func (a *Accounts) Status(number string) (Status, bool) { return a.Client.Status(number) }

// account is the registration of a number's account: its ID is the number.
func account(rg Range, c Credentials) Account {
	return Account{ID: c.Number, Number: c.Number, Domain: rg.Domain, Registrar: rg.Registrar,
		Username: c.Username, Password: c.Password, Realm: rg.Realm}
}
