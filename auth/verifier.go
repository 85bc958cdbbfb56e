// Package auth checks the OAuth2 bearer tokens of callpath's APIs (JWTs
// signed by a configured issuer, keys from its JWKS) and, for the embedded
// defaults and the tests, issues such tokens itself (DevIssuer). It uses
// go-jose for JOSE: signatures and key sets are not callpath's trade.
package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Claims is what callpath reads from a verified token.
type Claims struct {
	Subject  string
	ClientID string // azp or client_id; the subject for client tokens
	// PhoneNumber is set for a user token (OIDC's phone_number claim): the
	// subscriber the token speaks for. Client tokens carry none.
	PhoneNumber string
	Scopes      []string
	Expiry      time.Time
}

// HasScope reports whether the token grants scope.
func (c Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// ErrUnauthenticated covers every reason a token is not accepted; the
// wrapped detail is for logs, not for the client.
var ErrUnauthenticated = errors.New("missing or invalid bearer token")

// KeySource returns the keys that may have signed a token (a JWKS); a
// remote source refreshes itself.
type KeySource interface {
	Keys(ctx context.Context) (*jose.JSONWebKeySet, error)
}

// Verifier checks tokens of one issuer for one audience.
type Verifier struct {
	Issuer   string
	Audience string
	Keys     KeySource
	Leeway   time.Duration // clock skew allowed on exp, nbf, iat
	Now      func() time.Time
}

// signatureAlgorithms are accepted; "none" and HMAC never are (an HMAC key
// would be shared with every verifier).
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.EdDSA, jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// maxTokenLength bounds what is parsed at all.
const maxTokenLength = 8 << 10

// rawClaims are the JSON claims read beyond the registered ones.
type rawClaims struct {
	Scope       string `json:"scope"` // RFC 8693 §4.2: space-separated
	Scp         any    `json:"scp"`   // a list, as some issuers send
	ClientID    string `json:"client_id"`
	AZP         string `json:"azp"`
	PhoneNumber string `json:"phone_number"`
}

// Verify checks a compact JWT and returns its claims.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" || len(token) > maxTokenLength {
		return Claims{}, ErrUnauthenticated
	}
	tok, err := jwt.ParseSigned(token, signatureAlgorithms)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	keys, err := v.Keys.Keys(ctx)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: no keys: %v", ErrUnauthenticated, err)
	}
	var std jwt.Claims
	var raw rawClaims
	if err := tok.Claims(keys, &std, &raw); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if std.Expiry == nil {
		return Claims{}, fmt.Errorf("%w: token has no exp", ErrUnauthenticated)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: v.Issuer, AnyAudience: jwt.Audience{v.Audience}, Time: now()}, v.Leeway); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if std.Subject == "" {
		return Claims{}, fmt.Errorf("%w: token has no sub", ErrUnauthenticated)
	}
	c := Claims{Subject: std.Subject, PhoneNumber: raw.PhoneNumber, Expiry: std.Expiry.Time()}
	c.ClientID = raw.AZP
	if c.ClientID == "" {
		c.ClientID = raw.ClientID
	}
	c.Scopes = strings.Fields(raw.Scope)
	if list, ok := raw.Scp.([]any); ok {
		for _, s := range list {
			if s, ok := s.(string); ok {
				c.Scopes = append(c.Scopes, s)
			}
		}
	}
	return c, nil
}

// BearerToken takes the token out of an Authorization header value.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
