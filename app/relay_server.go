package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/conf"
	"callpath/metrics"
	"callpath/relay"
	"callpath/store"
)

// RelayServer is the notification relay on its own (`callpath relay`), as
// an app provider runs it: its HTTP(S) server on relay.listen, its store,
// the auth section's token checks, and /metrics, /healthz, /readyz (and
// /debug/pprof/ when http.pprof is on).
type RelayServer struct {
	cfg     *conf.Config
	log     *logrus.Logger
	db      *store.DB
	relay   *relay.Relay
	metrics *metrics.Registry

	srv     *http.Server
	ln      net.Listener
	stopRun context.CancelFunc
	runDone chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// checkpointInterval: how often the standalone relay checkpoints its store
// from a reader; short enough that the log never reaches the writer's
// wal_autocheckpoint at thousands of events per second.
const checkpointInterval = 200 * time.Millisecond

// NewRelayServer builds the relay of cfg; nothing listens until Start.
func NewRelayServer(ctx context.Context, cfg *conf.Config, log *logrus.Logger) (*RelayServer, error) {
	if cfg.Relay.Listen == "" {
		return nil, fmt.Errorf("%w: %v", conf.ErrInvalid, errRelayListen)
	}
	db, err := store.Open(ctx, cfg.Store.Path, store.Options{Logger: log.WithField("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &RelayServer{cfg: cfg, log: log, db: db, metrics: metrics.NewRelayRegistry()}
	verifier, dev, err := newVerifier(cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if dev != nil {
		log.WithField("key_file", cfg.DevIssuerKeyFile()).Warn("auth.dev_issuer is enabled: tokens minted with its key are accepted (labs and tests only)")
	}
	s.relay, err = buildRelay(cfg, db, verifier, metrics.NewRelay(s.metrics), log.WithField("component", "relay"))
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Start listens and runs the relay's background work.
func (s *RelayServer) Start(context.Context) error {
	mux := http.NewServeMux()
	s.relay.Routes(mux)
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.db.Ping(ctx); err != nil {
			writeText(w, http.StatusServiceUnavailable, "store unavailable\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	})
	if s.cfg.HTTP.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", s.cfg.Relay.Listen)
	if err != nil {
		return fmt.Errorf("relay listen %s: %w", s.cfg.Relay.Listen, err)
	}
	scheme := "http"
	if t := s.cfg.Relay.TLS; t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("%w: relay.tls.cert_file: %v", conf.ErrInvalid, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	s.ln = ln
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	runCtx, stop := context.WithCancel(context.Background())
	s.stopRun, s.runDone = stop, make(chan struct{})
	go func() { defer close(s.runDone); _ = s.relay.Run(runCtx) }()
	// The relay commits every event: its log fills fast, and the writer's
	// own checkpoint would stall the sinks (store/checkpoint.go).
	go s.db.RunCheckpoints(runCtx, checkpointInterval, 0, func(err error) {
		s.log.WithError(err).Warn("background checkpoint failed")
	})
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("relay http server stopped")
		}
	}()
	s.log.WithFields(logrus.Fields{"listen": s.Addr(), "scheme": scheme, "public_url": s.cfg.Relay.PublicURL}).Info("callpath relay started")
	return nil
}

// Addr is the bound address of the relay's server, or "".
func (s *RelayServer) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown closes the sockets with 1001 (going away), stops the HTTP server
// (sink requests in flight finish), and closes the store. Calling it again
// returns the first result.
func (s *RelayServer) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		var errs []error
		errs = append(errs, s.relay.Shutdown(ctx))
		if s.srv != nil {
			shutCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			errs = append(errs, s.srv.Shutdown(shutCtx))
			cancel()
		}
		if s.stopRun != nil {
			s.stopRun()
			<-s.runDone // the last acknowledgements are written
		}
		errs = append(errs, s.db.Close())
		s.stopErr = errors.Join(errs...)
		s.log.Info("callpath relay stopped")
	})
	return s.stopErr
}
