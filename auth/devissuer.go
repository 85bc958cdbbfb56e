package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DevIssuer signs tokens with a key of its own, kept in a file, so that the
// gateway on its embedded defaults and the tests have working credentials
// without an identity provider. `callpath token` mints with the same file.
// Production configures a real issuer instead.
type DevIssuer struct {
	Issuer   string
	Audience string
	key      ed25519.PrivateKey
	kid      string
}

// LoadOrCreateDevIssuer reads the Ed25519 key at path (PKCS#8 PEM),
// creating it (mode 0600) when the file does not exist.
func LoadOrCreateDevIssuer(path, issuer, audience string) (*DevIssuer, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("dev issuer key: %w", err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("dev issuer key: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("dev issuer key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("dev issuer key %s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dev issuer key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("dev issuer key %s: not an Ed25519 key", path)
	}
	sum := sha256.Sum256(priv.Public().(ed25519.PublicKey))
	return &DevIssuer{Issuer: issuer, Audience: audience, key: priv, kid: base64.RawURLEncoding.EncodeToString(sum[:12])}, nil
}

// Keys is the issuer's public key set, for a Verifier.
func (d *DevIssuer) Keys() StaticKeys {
	return StaticKeys{Set: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: d.key.Public(), KeyID: d.kid, Algorithm: string(jose.EdDSA), Use: "sig",
	}}}}
}

// Token describes a token to mint.
type Token struct {
	Subject     string
	PhoneNumber string // a user token; empty for a client token
	Scopes      []string
	TTL         time.Duration
}

// Mint signs a token.
func (d *DevIssuer) Mint(t Token) (string, error) {
	if t.Subject == "" {
		return "", errors.New("token needs a subject")
	}
	if t.TTL <= 0 {
		t.TTL = time.Hour
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: d.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", d.kid))
	if err != nil {
		return "", err
	}
	now := time.Now()
	std := jwt.Claims{
		Issuer: d.Issuer, Subject: t.Subject, Audience: jwt.Audience{d.Audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(t.TTL)),
	}
	extra := map[string]any{"scope": strings.Join(t.Scopes, " "), "client_id": t.Subject}
	if t.PhoneNumber != "" {
		extra["phone_number"] = t.PhoneNumber
		delete(extra, "client_id")
	}
	return jwt.Signed(signer).Claims(std).Claims(extra).Serialize()
}
