package calls

import (
	"errors"
	"regexp"
	"strings"
)

// ErrBadAddress is an Address that is neither tel:+E.164 nor a sip: URI of
// the spec's form.
var ErrBadAddress = errors.New("address must be tel:+<E.164> or sip:<user>@<domain>")

// addressPattern is the r2.2 call-handling Address schema.
var addressPattern = regexp.MustCompile(`^(tel:\+[0-9]{5,15}|sip:[A-Za-z0-9_.!%+\-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})$`)

// Address is a party of a session: tel:+E164 or sip:user@domain.
type Address string

// ParseAddress checks s against the spec's Address form.
func ParseAddress(s string) (Address, error) {
	if !addressPattern.MatchString(s) {
		return "", ErrBadAddress
	}
	return Address(s), nil
}

// Number returns the E.164 number the address names: tel:+N, or
// sip:+N@domain (a telephone number as a SIP user); false otherwise.
func (a Address) Number() (string, bool) {
	s := string(a)
	if n, ok := strings.CutPrefix(s, "tel:"); ok {
		return n, true
	}
	if rest, ok := strings.CutPrefix(s, "sip:"); ok {
		user, _, _ := strings.Cut(rest, "@")
		if len(user) > 1 && user[0] == '+' && strings.Trim(user[1:], "0123456789") == "" {
			return user, true
		}
	}
	return "", false
}

// NumberAddress is the tel: address of an E.164 number.
func NumberAddress(number string) Address { return Address("tel:" + number) }
