package camara

import (
	"context"
	"net/http"

	"callpath/auth"
)

// TokenVerifier checks a bearer token (auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// Principal is who calls: the verified token's claims. PhoneNumber is the
// subscriber the token speaks for ("" for a client token).
type Principal struct {
	auth.Claims
}

type principalKey struct{}

// PrincipalFrom returns the caller of an authenticated request.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Access is what an operation demands of the caller's token.
type Access struct {
	// AnyScope: the token must hold at least one of these (none: no scope
	// needed). Operations whose scope depends on the body (webrtc-events
	// create) check the exact scope in the handler.
	AnyScope []string
	// Subscriber: the token must name a subscriber (phone_number);
	// NoSubscriber is the error when it does not (default 403).
	Subscriber   bool
	NoSubscriber *Error
}

// Authenticate verifies the bearer token of every request (401
// UNAUTHENTICATED when missing, invalid or expired), checks a.AnyScope
// (403 PERMISSION_DENIED) and the subscriber, then calls next with the
// Principal in the context. An Accept header that rules out JSON is 406.
func Authenticate(v TokenVerifier, a Access, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := auth.BearerToken(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, ErrUnauthenticated)
			return
		}
		c, err := v.Verify(r.Context(), tok)
		if err != nil {
			writeError(w, ErrUnauthenticated)
			return
		}
		if len(a.AnyScope) > 0 && !hasAnyScope(c, a.AnyScope) {
			writeError(w, ErrPermissionDenied)
			return
		}
		if a.Subscriber && c.PhoneNumber == "" {
			e := a.NoSubscriber
			if e == nil {
				e = ErrPermissionDenied.WithMessage("The access token does not identify a subscriber.")
			}
			writeError(w, e)
			return
		}
		if !acceptsJSON(r) {
			writeError(w, ErrNotAcceptable)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, Principal{c})))
	})
}

func hasAnyScope(c auth.Claims, scopes []string) bool {
	for _, s := range scopes {
		if c.HasScope(s) {
			return true
		}
	}
	return false
}
