package relay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"callpath/auth"
)

// TokenVerifier checks a bearer token (auth.Verifier, auth.Cached).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// TokenMinter signs tokens (auth.DevIssuer).
type TokenMinter interface {
	Mint(t auth.Token) (string, error)
}

// The issuer and audience of relay-issued tokens. They must differ from
// the operator's (conf checks auth.issuer), so that a relay token opens
// nothing but the relay and an operator token is never taken for one.
const (
	RelayIssuer   = "callpath-relay"
	RelayAudience = "callpath-relay"
)

// Relay-issued tokens name their binding in the subject and carry one scope.
const (
	bindingSubjectPrefix = "relay-binding:"
	connectScope         = "relay:connect"
)

// BindingTokens issues and checks relay-issued tokens: JWTs signed with the
// relay's own key whose subject is a binding, handed out in every hello so
// that an app can reconnect to its binding after its access token expired.
type BindingTokens struct {
	minter   TokenMinter
	verifier TokenVerifier
	ttl      time.Duration
}

// NewBindingTokens issues tokens with issuer (created with RelayIssuer and
// RelayAudience), valid for ttl.
func NewBindingTokens(issuer *auth.DevIssuer, ttl time.Duration) *BindingTokens {
	return &BindingTokens{
		minter:   issuer,
		verifier: &auth.Verifier{Issuer: RelayIssuer, Audience: RelayAudience, Keys: issuer.Keys(), Leeway: time.Minute},
		ttl:      ttl,
	}
}

// mint returns a token for bindingID and when it expires.
func (b *BindingTokens) mint(bindingID string) (string, time.Time, error) {
	// The JWT's exp has whole seconds; so has what the hello says.
	exp := time.Now().Add(b.ttl).Truncate(time.Second)
	tok, err := b.minter.Mint(auth.Token{Subject: bindingSubjectPrefix + bindingID, Scopes: []string{connectScope}, TTL: b.ttl})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("relay token: %w", err)
	}
	return tok, exp, nil
}

// binding returns the binding a relay-issued token names; ok is false for
// any other token (an operator's, an expired or forged one).
func (b *BindingTokens) binding(ctx context.Context, token string) (string, bool) {
	c, err := b.verifier.Verify(ctx, token)
	if err != nil || !c.HasScope(connectScope) || !strings.HasPrefix(c.Subject, bindingSubjectPrefix) {
		return "", false
	}
	id := strings.TrimPrefix(c.Subject, bindingSubjectPrefix)
	return id, id != ""
}

// newSinkToken returns a random sink token and its SHA-256, the only form
// the store keeps.
func newSinkToken() (string, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("sink token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	return tok, hashToken(tok), nil
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// bearerFrom takes the token of a WebSocket request: the Authorization
// header, else a "bearer.TOKEN" subprotocol (browsers cannot set headers
// on a WebSocket).
func bearerFrom(h map[string][]string, protocols []string) (string, error) {
	if v := firstHeader(h, "Authorization"); v != "" {
		tok, ok := auth.BearerToken(v)
		if !ok {
			return "", errors.New("the Authorization header is not a bearer token")
		}
		return tok, nil
	}
	for _, p := range protocols {
		if tok, ok := strings.CutPrefix(p, BearerPrefix); ok && tok != "" {
			return tok, nil
		}
	}
	return "", errors.New("no bearer token: send Authorization: Bearer, or the subprotocol bearer.TOKEN")
}

func firstHeader(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
