// Package provisioning serves the SipBreakout API (wgtwo.sipbreakout.v1)
// over gRPC and its REST/JSON mirror over HTTP, on top of the registry:
// tokens in, registry operations, the API's answers out.
package provisioning

import (
	"context"
	"errors"
	"time"

	"callpath/auth"
	"callpath/registry"
)

// ScopeWrite is the scope every SipBreakout operation needs.
const ScopeWrite = "call.routing:write"

// TokenVerifier checks a bearer token.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// Registry is what the API servers need of the registry.
type Registry interface {
	Upsert(ctx context.Context, p registry.Principal, r registry.Registration) (registry.Registration, error)
	Delete(ctx context.Context, p registry.Principal, r registry.Registration) error
	Get(p registry.Principal, number string) (registry.Registration, error)
	List(p registry.Principal) []registry.Registration
	TTL() time.Duration
}

var (
	errNoToken      = errors.New("missing bearer token")
	errMissingScope = errors.New("token lacks the scope this operation needs")
)

// principalOf verifies a bearer token and checks its scope.
func principalOf(ctx context.Context, v TokenVerifier, token, scope string) (registry.Principal, error) {
	if token == "" {
		return registry.Principal{}, errNoToken
	}
	c, err := v.Verify(ctx, token)
	if err != nil {
		return registry.Principal{}, err
	}
	if scope != "" && !c.HasScope(scope) {
		return registry.Principal{}, errMissingScope
	}
	return registry.Principal{Subject: c.Subject, PhoneNumber: c.PhoneNumber}, nil
}
