package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newDev(t *testing.T) (*DevIssuer, *Verifier) {
	t.Helper()
	d, err := LoadOrCreateDevIssuer(filepath.Join(t.TempDir(), "dev.key"), "callpath-dev", "callpath")
	if err != nil {
		t.Fatal(err)
	}
	return d, &Verifier{Issuer: "callpath-dev", Audience: "callpath", Keys: d.Keys(), Leeway: time.Minute}
}

func TestMintAndVerify(t *testing.T) {
	d, v := newDev(t)
	tok, err := d.Mint(Token{Subject: "user-1", PhoneNumber: "+4790000001", Scopes: []string{"call.routing:write", "other"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-1" || c.PhoneNumber != "+4790000001" || !c.HasScope("call.routing:write") || c.HasScope("call.routing") {
		t.Fatalf("claims %+v", c)
	}
	client, _ := d.Mint(Token{Subject: "tas-provider", Scopes: []string{"call.routing:write"}})
	c, err = v.Verify(context.Background(), client)
	if err != nil || c.PhoneNumber != "" || c.ClientID != "tas-provider" {
		t.Fatalf("client token: %+v, %v", c, err)
	}
}

// The same key file gives the same issuer: tokens minted by `callpath
// token` are accepted by the running gateway.
func TestDevIssuerKeyIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.key")
	d1, err := LoadOrCreateDevIssuer(path, "i", "a")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := LoadOrCreateDevIssuer(path, "i", "a")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := d1.Mint(Token{Subject: "s"})
	if _, err := (&Verifier{Issuer: "i", Audience: "a", Keys: d2.Keys()}).Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestRejectedTokens(t *testing.T) {
	d, v := newDev(t)
	other, _ := newDev(t)
	good, _ := d.Mint(Token{Subject: "s", Scopes: []string{"x"}})
	expired, _ := d.Mint(Token{Subject: "s", TTL: time.Nanosecond})
	foreign, _ := other.Mint(Token{Subject: "s"})
	wrongAud := &DevIssuer{Issuer: d.Issuer, Audience: "someone-else", key: d.key, kid: d.kid}
	aud, _ := wrongAud.Mint(Token{Subject: "s"})
	wrongIss := &DevIssuer{Issuer: "evil", Audience: d.Audience, key: d.key, kid: d.kid}
	iss, _ := wrongIss.Mint(Token{Subject: "s"})
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","iss":"callpath-dev","aud":"callpath","exp":9999999999}`)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	v.Now = func() time.Time { return time.Now().Add(2 * time.Minute) } // past the leeway of "expired"
	for name, tok := range map[string]string{
		"empty": "", "garbage": "not.a.jwt", "expired": expired, "other key": foreign,
		"wrong audience": aud, "wrong issuer": iss, "tampered payload": tampered, "alg none": none,
		"too long": strings.Repeat("a", maxTokenLength+1),
	} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: err %v, want ErrUnauthenticated", name, err)
		}
	}
	v.Now = nil
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer": "", "": ""} {
		got, ok := BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v", in, got, ok)
		}
	}
}

func FuzzVerify(f *testing.F) {
	d, err := LoadOrCreateDevIssuer(filepath.Join(f.TempDir(), "dev.key"), "i", "a")
	if err != nil {
		f.Fatal(err)
	}
	good, _ := d.Mint(Token{Subject: "s"})
	f.Add(good)
	f.Add("a.b.c")
	v := &Verifier{Issuer: "i", Audience: "a", Keys: d.Keys()}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		// Whatever is accepted says what the minted token says: base64
		// spelling may vary, the signed claims may not.
		if err == nil && c.Subject != "s" {
			t.Fatalf("accepted forged claims: %q -> %+v", tok, c)
		}
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("error %v is not ErrUnauthenticated", err)
		}
	})
}
