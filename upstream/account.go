package upstream

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Account is the SIP account the telco issued for one number: callpath
// registers the number at the telco's registrar with it.
type Account struct {
	ID     string // our identifier of the registration
	Number string // E.164; the user part of the address of record
	Domain string // host of the address of record (the telco's SIP domain)
	// Registrar is the URI REGISTER is sent to, e.g.
	// "sip:registrar.telco.example;transport=tcp"; empty: sip:<Domain>.
	// Without a port its DNS SRV targets are tried in turn (RFC 3263).
	Registrar string
	Username  string // digest user name; empty: Number
	Password  string // never logged
	// Realm, if set, is the only digest realm the credentials are given to:
	// a challenge for another realm fails the registration rather than
	// answer it.
	Realm string
	// Expires is the binding lifetime asked for; 0: the client's default.
	Expires time.Duration
}

// String leaves the password out.
func (a Account) String() string {
	return fmt.Sprintf("account %s (%s at %s)", a.ID, a.Number, a.Domain)
}

// registrarURI parses the registrar's URI (or sip:<Domain>).
func (a Account) registrarURI() (sip.Uri, error) {
	raw := a.Registrar
	if raw == "" {
		raw = "sip:" + a.Domain
	}
	var u sip.Uri
	if err := sip.ParseUri(raw, &u); err != nil {
		return u, fmt.Errorf("registrar %q: %w", raw, err)
	}
	if u.Host == "" {
		return u, fmt.Errorf("registrar %q has no host", raw)
	}
	u.User = ""
	return u, nil
}

func (a Account) validate() error {
	switch {
	case a.ID == "":
		return errors.New("account without ID")
	case !strings.HasPrefix(a.Number, "+") || len(a.Number) < 4:
		return fmt.Errorf("%s: number %q is not E.164", a, a.Number)
	case a.Domain == "":
		return fmt.Errorf("%s: no domain", a)
	}
	_, err := a.registrarURI()
	return err
}

func (a Account) username() string {
	if a.Username != "" {
		return a.Username
	}
	return a.Number
}
