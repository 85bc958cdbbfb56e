package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"

	"callpath/auth"
	"callpath/conf"
	"callpath/provisioning"
	"callpath/registry"
)

// newVerifier builds the token verifier of cfg.Auth: the configured issuer's
// keys, plus the dev issuer's when it is enabled.
func newVerifier(c *conf.Config) (auth.TokenVerifier, *auth.DevIssuer, error) {
	cfg := c.Auth
	v := &auth.Verifier{Issuer: cfg.Issuer, Audience: cfg.Audience, Leeway: cfg.Leeway}
	var dev *auth.DevIssuer
	var sources multiKeys
	if cfg.DevIssuer.Enabled {
		d, err := auth.LoadOrCreateDevIssuer(c.DevIssuerKeyFile(), cfg.Issuer, cfg.Audience)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: auth.dev_issuer.key_file: %v", conf.ErrInvalid, err)
		}
		dev = d
		sources = append(sources, d.Keys())
	}
	switch {
	case cfg.JWKSFile != "":
		k, err := auth.LoadJWKSFile(cfg.JWKSFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: auth.jwks_file: %v", conf.ErrInvalid, err)
		}
		sources = append(sources, k)
	case cfg.JWKSURL != "":
		sources = append(sources, &auth.RemoteKeys{URL: cfg.JWKSURL, Refresh: cfg.JWKSRefresh})
	}
	v.Keys = sources
	tokens := auth.Tokens{JWT: v}
	if in := cfg.Introspection; in.URL != "" {
		tokens.Opaque = &auth.Introspector{URL: in.URL, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
			Audience: cfg.Audience, CacheTTL: in.CacheTTL}
	}
	return &auth.Cached{Inner: tokens}, dev, nil
}

// multiKeys merges key sets: the dev issuer's and a real issuer's may both
// be trusted in a lab.
type multiKeys []auth.KeySource

func (m multiKeys) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	if len(m) == 1 {
		return m[0].Keys(ctx)
	}
	out := &jose.JSONWebKeySet{}
	var firstErr error
	for _, s := range m {
		set, err := s.Keys(ctx)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out.Keys = append(out.Keys, set.Keys...)
	}
	if len(out.Keys) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// newRegistry loads the registrations from the store.
func (a *App) newRegistry(ctx context.Context) error {
	r, err := registry.New(ctx, registry.Config{TTL: a.cfg.Registrations.TTL, AllowPlainSIP: a.cfg.Registrations.AllowPlainSIP}, a.db, nil)
	if err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	a.registry = r
	return nil
}

// provisioningRoutes adds the REST mirror of the SipBreakout API.
func (a *App) provisioningRoutes(mux *http.ServeMux) {
	(&provisioning.REST{Registry: a.registry, Verifier: a.verifier, Log: a.log.WithField("component", "provisioning")}).Routes(mux)
	provisioning.ExplainRoutes(mux, a.breakout, a.verifier)
	provisioning.UpstreamRoutes(mux, a.accounts, a.verifier)
	provisioning.DeadLetterRoutes(mux, a.db, a.verifier)
	provisioning.TerminateRoutes(mux, a.camara.events, a.verifier, a.log.WithField("component", "provisioning"))
}

// sweepRegistrations removes expired registrations every interval until ctx
// ends.
func (a *App) sweepRegistrations(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := a.registry.Sweep(ctx); err != nil {
				a.log.WithError(err).Warn("sweeping expired registrations failed")
			} else if n > 0 {
				a.log.WithField("expired", n).Info("expired registrations removed")
			}
		}
	}
}
