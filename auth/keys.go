package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// StaticKeys is a fixed key set: the dev issuer's, or a JWKS file.
type StaticKeys struct{ Set *jose.JSONWebKeySet }

func (k StaticKeys) Keys(context.Context) (*jose.JSONWebKeySet, error) { return k.Set, nil }

// LoadJWKSFile reads a JWKS document from a file.
func LoadJWKSFile(path string) (StaticKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return StaticKeys{}, fmt.Errorf("read jwks: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return StaticKeys{}, fmt.Errorf("parse jwks %s: %w", path, err)
	}
	if len(set.Keys) == 0 {
		return StaticKeys{}, fmt.Errorf("jwks %s has no keys", path)
	}
	return StaticKeys{Set: &set}, nil
}

// RemoteKeys fetches an issuer's JWKS over HTTPS and keeps it for Refresh;
// a failed refresh keeps the last good set (an issuer outage must not lock
// every client out while their tokens are still valid).
type RemoteKeys struct {
	URL     string
	Refresh time.Duration
	Client  *http.Client

	mu      sync.Mutex
	set     *jose.JSONWebKeySet
	fetched time.Time
}

// maxJWKSBytes bounds a JWKS response.
const maxJWKSBytes = 1 << 20

func (k *RemoteKeys) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set != nil && time.Since(k.fetched) < k.Refresh {
		return k.set, nil
	}
	set, err := k.fetch(ctx)
	if err != nil {
		if k.set != nil {
			k.fetched = time.Now().Add(-k.Refresh + 10*time.Second) // retry in 10 s
			return k.set, nil
		}
		return nil, err
	}
	k.set, k.fetched = set, time.Now()
	return set, nil
}

func (k *RemoteKeys) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	client := k.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL, nil)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: %s", res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	if len(b) > maxJWKSBytes {
		return nil, errors.New("fetch jwks: document too large")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	return &set, nil
}
