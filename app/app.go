// Package app builds the whole gateway from a configuration. cmd/callpath and
// the end-to-end tests use the same constructor, so tests run the real thing.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"callpath/auth"
	"callpath/b2bua"
	"callpath/conf"
	"callpath/metrics"
	"callpath/provisioning"
	"callpath/registry"
	"callpath/routing"
	"callpath/store"
	"callpath/upstream"
)

// App is one running gateway.
type App struct {
	cfg     *conf.Config
	log     *logrus.Logger
	metrics *metrics.Registry
	db      *store.DB
	cdrs    *store.CDRWriter
	sip     *b2bua.Server

	registry   *registry.Registry
	breakout   *routing.Breakout
	tasSources *registry.TASSources
	upstream   *upstream.Client
	accounts   *upstream.Accounts
	camara     *camaraStack
	relay      *relayStack    // nil: relay.enabled is off
	media      *mediaStack    // nil: media.enabled is off
	bgWG       sync.WaitGroup // background work that uses the store
	verifier   auth.TokenVerifier
	devIssuer  *auth.DevIssuer
	stopBg     context.CancelFunc // background loops (registration sweep)

	httpSrv *http.Server
	httpLn  net.Listener
	grpcSrv *grpc.Server
	grpcLn  net.Listener
	health  *health.Server

	stopOnce sync.Once
	stopErr  error
}

// New builds the gateway: store, metrics, routing, B2BUA and servers. Nothing
// listens until Start.
func New(ctx context.Context, cfg *conf.Config, log *logrus.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log, metrics: metrics.New()}
	db, err := store.Open(ctx, cfg.Store.Path, store.Options{Logger: log.WithField("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	a.db = db
	a.cdrs = store.NewCDRWriter(db, store.CDRWriterOptions{Logger: log.WithField("component", "cdr"), FlushInterval: cfg.Store.CDRFlushInterval})

	routes := make([]routing.Route, 0, len(cfg.Routing.Routes))
	for _, r := range cfg.Routing.Routes {
		routes = append(routes, routing.Route{Prefix: r.Prefix, RangeFrom: r.RangeFrom, RangeTo: r.RangeTo, Target: r.Target})
	}
	router := routing.NewStaticTable(routes, cfg.Routing.DefaultTarget)

	if a.verifier, a.devIssuer, err = newVerifier(cfg); err != nil {
		a.closeStore()
		return nil, err
	}
	if a.devIssuer != nil {
		log.WithField("key_file", cfg.DevIssuerKeyFile()).Warn("auth.dev_issuer is enabled: tokens minted with its key are accepted (labs and tests only)")
	}
	if err := a.newRegistry(ctx); err != nil {
		a.closeStore()
		return nil, err
	}
	a.breakout = &routing.Breakout{Destinations: router, Registrations: a.registry, FallbackTimeout: cfg.Registrations.FallbackTimeout}

	sipCfg, err := b2buaConfig(cfg)
	if err != nil {
		a.closeStore()
		return nil, err
	}
	resolver := dnsResolver(cfg.SIP.DNSServer)
	a.tasSources = &registry.TASSources{Registry: a.registry, Resolver: resolver}
	a.sip, err = b2bua.New(sipCfg, b2bua.Deps{
		Planner: a.breakout, Recorder: a.cdrs, Metrics: a.metrics, Log: log.WithField("component", "sip"),
		TASSources: a.tasSources, Resolver: resolver,
	})
	if err != nil {
		a.closeStore()
		return nil, err
	}
	a.upstream, err = newUpstream(cfg, a.sip, resolver, a.metrics, log.WithField("component", "upstream"))
	if err != nil {
		a.closeStore()
		return nil, err
	}
	a.accounts = &upstream.Accounts{Client: a.upstream, Ranges: upstreamRanges(cfg), Store: a.db}
	if a.camara, err = a.newCAMARA(cfg); err != nil {
		a.closeStore()
		return nil, err
	}
	if a.relay, err = a.newRelay(cfg); err != nil {
		a.closeStore()
		return nil, err
	}
	return a, nil
}

func b2buaConfig(cfg *conf.Config) (b2bua.Config, error) {
	c := b2bua.Config{
		Listen: b2bua.Listen{UDP: cfg.SIP.Listen.UDP, TCP: cfg.SIP.Listen.TCP, TLS: cfg.SIP.Listen.TLS,
			WS: cfg.SIP.Listen.WS, WSS: cfg.SIP.Listen.WSS},
		AdvertisedHost: cfg.SIP.AdvertisedHost, UserAgent: cfg.SIP.UserAgent,
		UDPReceiveBuffer: cfg.SIP.UDPReceiveBuffer, NoAnswerTimeout: cfg.SIP.NoAnswerTimeout,
		MaxForwards: cfg.SIP.MaxForwards, T1: cfg.SIP.Timers.T1, T2: cfg.SIP.Timers.T2, T4: cfg.SIP.Timers.T4, Linger: cfg.SIP.Timers.Linger,
		RetryAfter: cfg.Shutdown.RetryAfter, DialogKeepalive: cfg.SIP.DialogKeepalive,
	}
	c.ClientTLS = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.SIP.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SIP.TLS.CertFile, cfg.SIP.TLS.KeyFile)
		if err != nil {
			return c, fmt.Errorf("%w: sip.tls.cert_file: %v", conf.ErrInvalid, err)
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.ClientTLS.Certificates = []tls.Certificate{cert}
	}
	if cfg.SIP.TLS.CAFile != "" {
		pool, err := loadCAs("sip.tls.ca_file", cfg.SIP.TLS.CAFile)
		if err != nil {
			return c, err
		}
		c.ClientTLS.RootCAs = pool
	}
	if cfg.Registrations.TASCAFile != "" {
		pool, err := loadCAs("registrations.tas_ca_file", cfg.Registrations.TASCAFile)
		if err != nil {
			return c, err
		}
		c.TASClientTLS = c.ClientTLS.Clone()
		c.TASClientTLS.RootCAs = pool
	}
	return c, nil
}

// loadCAs reads a PEM bundle of CA certificates named by config key.
func loadCAs(key, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", conf.ErrInvalid, key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s: no PEM certificate in %s", conf.ErrInvalid, key, path)
	}
	return pool, nil
}

// dnsResolver is the resolver of sip.dns_server, or the system's.
func dnsResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, server)
	}}
}

// Start opens every listener.
func (a *App) Start(ctx context.Context) error {
	if err := a.camara.devices.Load(ctx); err != nil {
		return fmt.Errorf("device registrations: %w", err)
	}
	if a.cfg.Media.Enabled {
		if err := a.startMedia(ctx); err != nil {
			return err
		}
	}
	if err := a.sip.Start(); err != nil {
		_ = a.media.shutdown(ctx)
		return fmt.Errorf("sip: %w", err)
	}
	if a.media != nil {
		if err := a.media.gw.SetProxy(a.sip.Addr("udp")); err != nil {
			return err
		}
	}
	bg, stop := context.WithCancel(context.Background())
	a.stopBg = stop
	// Checkpoints from a reader, so that the writer's own (an fsync inside
	// some unlucky commit) do not stall the calls' CDRs, the outbox and
	// the relay's sinks behind it (store/checkpoint.go).
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		a.db.RunCheckpoints(bg, checkpointInterval, 0, func(err error) {
			a.log.WithError(err).Warn("background checkpoint failed")
		})
	}()
	go a.sweepRegistrations(bg, a.cfg.Registrations.SweepInterval)
	camaraErr := func(what string, err error) { a.log.WithError(err).Warn(what + " failed") }
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		a.camara.run(bg, a.cfg.CAMARA.SweepInterval, camaraErr)
	}()
	a.relay.start(bg, &a.bgWG)
	unwatch := a.camara.watchUpstream(bg, a.upstream, camaraErr)
	go func() { <-bg.Done(); unwatch() }()
	if n, err := a.accounts.Restore(ctx); err != nil {
		a.log.WithError(err).Warn("registering stored upstream accounts failed")
	} else if n > 0 {
		a.log.WithField("accounts", n).Info("registering stored upstream accounts")
	}
	go a.tasSources.Run(bg, a.cfg.Registrations.TASResolveInterval, func(err error) {
		a.log.WithError(err).Warn("resolving TAS host names failed")
	})
	if a.cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", a.cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listen %s: %w", a.cfg.HTTP.Listen, err)
		}
		a.httpLn = ln
		a.httpSrv = &http.Server{Handler: a.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.WithError(err).Error("http server stopped")
			}
		}()
	}
	if a.cfg.GRPC.Listen != "" {
		ln, err := net.Listen("tcp", a.cfg.GRPC.Listen)
		if err != nil {
			return fmt.Errorf("grpc listen %s: %w", a.cfg.GRPC.Listen, err)
		}
		a.grpcLn = ln
		a.grpcSrv = grpc.NewServer(grpc.UnaryInterceptor(provisioning.AuthInterceptor(a.verifier)))
		a.health = health.NewServer()
		healthpb.RegisterHealthServer(a.grpcSrv, a.health)
		(&provisioning.GRPCService{Registry: a.registry, Log: a.log.WithField("component", "provisioning")}).Register(a.grpcSrv)
		reflection.Register(a.grpcSrv)
		go func() {
			if err := a.grpcSrv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				a.log.WithError(err).Error("grpc server stopped")
			}
		}()
	}
	a.log.WithFields(logrus.Fields{
		"sip_udp": a.sip.Addr("udp"), "sip_tcp": a.sip.Addr("tcp"), "sip_tls": a.sip.Addr("tls"),
		"sip_ws": a.sip.Addr("ws"), "sip_wss": a.sip.Addr("wss"), "http": a.HTTPAddr(), "grpc": a.GRPCAddr(),
		"ice": a.ICEAddr(),
	}).Info("callpath started")
	return nil
}

// ICEAddr is the bound address of the media plane's ICE port, or "".
func (a *App) ICEAddr() string {
	if a.media == nil {
		return ""
	}
	return a.media.engine.ICEAddr().String()
}

// SIPAddr is the bound address of a SIP transport ("udp", "tcp", …).
func (a *App) SIPAddr(transport string) string { return a.sip.Addr(transport) }

// HTTPAddr is the bound address of the HTTP server, or "".
func (a *App) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// GRPCAddr is the bound address of the gRPC server, or "".
func (a *App) GRPCAddr() string {
	if a.grpcLn == nil {
		return ""
	}
	return a.grpcLn.Addr().String()
}

// Metrics returns the gateway's registry.
func (a *App) Metrics() *metrics.Registry { return a.metrics }

// Explain plans a new call from -> to without placing it.
func (a *App) Explain(from, to string) routing.Explanation { return a.breakout.Explain(from, to) }

// DevIssuer is the dev token issuer, nil when auth.dev_issuer is off.
func (a *App) DevIssuer() *auth.DevIssuer { return a.devIssuer }

// Upstream returns the client that registers numbers at the telco's
// registrar.
func (a *App) Upstream() *upstream.Client { return a.upstream }

// Registry returns the virtual registrations.
func (a *App) Registry() *registry.Registry { return a.registry }

// Store returns the gateway's database.
func (a *App) Store() *store.DB { return a.db }

// ActiveCalls is the number of calls in progress.
func (a *App) ActiveCalls() int { return a.sip.ActiveCalls() }

// SIPTransactions is the number of SIP server and client transactions held.
func (a *App) SIPTransactions() (server, client int) { return a.sip.Transactions() }

// Shutdown stops the gateway. Graceful: new calls get 503 and active calls
// get up to drainTimeout to end before they are hung up; otherwise everything
// stops at once. The CDRs of ended calls are flushed to the store either way.
// Calling it again returns the first result.
func (a *App) Shutdown(ctx context.Context, graceful bool, drainTimeout time.Duration) error {
	a.stopOnce.Do(func() {
		if a.health != nil {
			a.health.Shutdown() // NOT_SERVING while draining
		}
		if graceful {
			a.log.WithField("active_calls", a.sip.ActiveCalls()).Info("draining calls")
			drainCtx, cancel := context.WithTimeout(ctx, drainTimeout)
			a.sip.Drain(drainCtx)
			cancel()
		}
		// WebRTC calls end with their SIP dialogs up, and tell their apps.
		if err := a.media.shutdown(ctx); err != nil {
			a.log.WithError(err).Warn("ending WebRTC calls")
		}
		a.relay.shutdown(ctx, a.log) // sockets get 1001 while the store is open
		if a.stopBg != nil {
			a.stopBg()
		}
		a.bgWG.Wait()      // the deliverer drains before the store closes
		a.upstream.Close() // bindings lapse by themselves; a restart registers again
		var errs []error
		errs = append(errs, a.sip.Close())
		if a.httpSrv != nil {
			shutCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			errs = append(errs, a.httpSrv.Shutdown(shutCtx))
			cancel()
		}
		if a.grpcSrv != nil {
			if graceful {
				a.grpcSrv.GracefulStop()
			} else {
				a.grpcSrv.Stop()
			}
		}
		errs = append(errs, a.closeStoreCtx(ctx))
		a.stopErr = errors.Join(errs...)
		a.log.Info("callpath stopped")
	})
	return a.stopErr
}

func (a *App) closeStore() { _ = a.closeStoreCtx(context.Background()) }

func (a *App) closeStoreCtx(ctx context.Context) error {
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return errors.Join(a.cdrs.Close(flushCtx), a.db.Close())
}
