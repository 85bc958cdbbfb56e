package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Introspector checks opaque (non-JWT) tokens at the issuer's RFC 7662
// introspection endpoint, authenticating as ClientID with HTTP Basic.
// Active answers are kept until the token's exp or CacheTTL, whichever
// comes first, so a client's requests do not each cost a round trip.
type Introspector struct {
	URL          string
	ClientID     string
	ClientSecret string // never logged
	Audience     string // if set, the answer's aud must contain it
	Client       *http.Client
	CacheTTL     time.Duration // 0: no cache
	Now          func() time.Time

	mu    sync.Mutex
	cache map[string]cachedClaims
}

type cachedClaims struct {
	claims Claims
	until  time.Time
}

// maxCache bounds the cache; when full it is emptied (a burst of distinct
// tokens costs round trips, never memory).
const maxCache = 10000

// introspection is RFC 7662 §2.2's answer, with the claims callpath reads.
type introspection struct {
	Active      bool            `json:"active"`
	Scope       string          `json:"scope"`
	ClientID    string          `json:"client_id"`
	Sub         string          `json:"sub"`
	Exp         int64           `json:"exp"`
	Aud         json.RawMessage `json:"aud"`
	PhoneNumber string          `json:"phone_number"`
}

func (in *Introspector) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// Verify asks the endpoint about token.
func (in *Introspector) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" || len(token) > maxTokenLength {
		return Claims{}, ErrUnauthenticated
	}
	now := in.now()
	in.mu.Lock()
	if c, ok := in.cache[token]; ok && now.Before(c.until) {
		in.mu.Unlock()
		return c.claims, nil
	}
	in.mu.Unlock()

	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return Claims{}, fmt.Errorf("%w: introspection: %v", ErrUnauthenticated, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	client := in.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	res, err := client.Do(req)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: introspection: %v", ErrUnauthenticated, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return Claims{}, fmt.Errorf("%w: introspection answered %d", ErrUnauthenticated, res.StatusCode)
	}
	var ans introspection
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&ans); err != nil {
		return Claims{}, fmt.Errorf("%w: introspection answer: %v", ErrUnauthenticated, err)
	}
	if !ans.Active {
		return Claims{}, fmt.Errorf("%w: token not active", ErrUnauthenticated)
	}
	exp := time.Unix(ans.Exp, 0)
	if ans.Exp != 0 && !now.Before(exp) {
		return Claims{}, fmt.Errorf("%w: token expired", ErrUnauthenticated)
	}
	if in.Audience != "" && !audienceHas(ans.Aud, in.Audience) {
		return Claims{}, fmt.Errorf("%w: token not for audience %q", ErrUnauthenticated, in.Audience)
	}
	subject := ans.Sub
	if subject == "" {
		subject = ans.ClientID
	}
	if subject == "" {
		return Claims{}, fmt.Errorf("%w: introspection names no sub or client_id", ErrUnauthenticated)
	}
	c := Claims{Subject: subject, ClientID: ans.ClientID, PhoneNumber: ans.PhoneNumber, Scopes: strings.Fields(ans.Scope)}
	if ans.Exp != 0 {
		c.Expiry = exp
	}
	if in.CacheTTL > 0 {
		until := now.Add(in.CacheTTL)
		if !c.Expiry.IsZero() && c.Expiry.Before(until) {
			until = c.Expiry
		}
		in.mu.Lock()
		if in.cache == nil || len(in.cache) >= maxCache {
			in.cache = make(map[string]cachedClaims)
		}
		in.cache[token] = cachedClaims{claims: c, until: until}
		in.mu.Unlock()
	}
	return c, nil
}

// audienceHas reads aud as a string or a list of strings.
func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}

// TokenVerifier is what checks a bearer token.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (Claims, error)
}

// Tokens checks JWTs with JWT and other (opaque) tokens with Opaque, when
// set.
type Tokens struct {
	JWT    TokenVerifier
	Opaque TokenVerifier // nil: opaque tokens are refused
}

// Verify dispatches on the token's shape: a compact JWS has three
// dot-separated parts.
func (t Tokens) Verify(ctx context.Context, token string) (Claims, error) {
	if strings.Count(token, ".") == 2 || t.Opaque == nil {
		return t.JWT.Verify(ctx, token)
	}
	return t.Opaque.Verify(ctx, token)
}
