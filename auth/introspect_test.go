package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// An RFC 7662 endpoint on loopback: it checks the client's Basic
// credentials and answers for three opaque tokens.
func introspectionServer(t *testing.T, now time.Time, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "callpath" || secret != "s3cret" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ans := map[string]any{"active": false}
		switch r.FormValue("token") {
		case "opaque-user":
			ans = map[string]any{"active": true, "sub": "user-1", "client_id": "app", "scope": "webrtc-events:read other",
				"exp": now.Add(time.Hour).Unix(), "aud": []string{"callpath"}, "phone_number": "+4790000001"}
		case "opaque-expired":
			ans = map[string]any{"active": true, "sub": "user-1", "exp": now.Add(-time.Minute).Unix(), "aud": "callpath"}
		case "opaque-elsewhere":
			ans = map[string]any{"active": true, "sub": "user-1", "exp": now.Add(time.Hour).Unix(), "aud": "another-api"}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestIntrospection(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	srv := introspectionServer(t, now, &calls)
	in := &Introspector{URL: srv.URL, ClientID: "callpath", ClientSecret: "s3cret", Audience: "callpath",
		CacheTTL: time.Minute, Now: func() time.Time { return now }}
	ctx := context.Background()

	c, err := in.Verify(ctx, "opaque-user")
	if err != nil || c.Subject != "user-1" || c.PhoneNumber != "+4790000001" || !c.HasScope("webrtc-events:read") || c.ClientID != "app" {
		t.Fatalf("claims %+v, %v", c, err)
	}
	if _, err := in.Verify(ctx, "opaque-user"); err != nil || calls.Load() != 1 {
		t.Fatalf("second check asked the endpoint again (%d calls), %v", calls.Load(), err)
	}
	for _, token := range []string{"opaque-expired", "opaque-elsewhere", "unknown"} {
		if _, err := in.Verify(ctx, token); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v", token, err)
		}
	}
	wrong := &Introspector{URL: srv.URL, ClientID: "callpath", ClientSecret: "guess"}
	if _, err := wrong.Verify(ctx, "opaque-user"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("with the wrong client secret: %v", err)
	}

	// Tokens: JWTs go to the JWT verifier, opaque ones to introspection.
	d, v := newDev(t)
	jwt, err := d.Mint(Token{Subject: "jwt-user", Scopes: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	both := Tokens{JWT: v, Opaque: in}
	if c, err := both.Verify(ctx, jwt); err != nil || c.Subject != "jwt-user" {
		t.Errorf("JWT through Tokens: %+v, %v", c, err)
	}
	if c, err := both.Verify(ctx, "opaque-user"); err != nil || c.Subject != "user-1" {
		t.Errorf("opaque through Tokens: %+v, %v", c, err)
	}
	if _, err := (Tokens{JWT: v}).Verify(ctx, "opaque-user"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("opaque token without introspection: %v", err)
	}
}

// A verified token is answered from the cache until it expires; then it is
// checked again, and refused.
func TestCachedVerifier(t *testing.T) {
	now := time.Now()
	d, v := newDev(t)
	counting := &countingVerifier{inner: v}
	c := &Cached{Inner: counting, Now: func() time.Time { return now }}
	tok, err := d.Mint(Token{Subject: "u", Scopes: []string{"s"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if cl, err := c.Verify(context.Background(), tok); err != nil || cl.Subject != "u" {
			t.Fatalf("verify: %+v, %v", cl, err)
		}
	}
	if counting.n != 1 {
		t.Fatalf("inner verifier called %d times, want once", counting.n)
	}
	if _, err := c.Verify(context.Background(), "garbage"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("garbage: %v", err)
	}
	now = now.Add(2 * time.Minute)
	v.Now = func() time.Time { return now }
	if _, err := c.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token still accepted: %v", err)
	}
}

type countingVerifier struct {
	inner TokenVerifier
	n     int
}

func (c *countingVerifier) Verify(ctx context.Context, tok string) (Claims, error) {
	c.n++
	return c.inner.Verify(ctx, tok)
}
