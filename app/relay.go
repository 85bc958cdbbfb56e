package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"callpath/auth"
	"callpath/conf"
	"callpath/metrics"
	"callpath/relay"
	"callpath/store"
)

// relayStack is the notification relay embedded in the gateway (relay.enabled):
// served by the gateway's HTTP server, on the gateway's store. Its methods
// do nothing on a nil stack (relay off).
type relayStack struct {
	relay *relay.Relay
}

// newRelay builds the embedded relay, or nil when relay.enabled is off.
func (a *App) newRelay(cfg *conf.Config) (*relayStack, error) {
	if !cfg.Relay.Enabled {
		return nil, nil
	}
	m := metrics.NewRelay(a.metrics)
	r, err := buildRelay(cfg, a.db, a.verifier, m, a.log.WithField("component", "relay"))
	if err != nil {
		return nil, err
	}
	return &relayStack{relay: r}, nil
}

func (s *relayStack) routes(mux *http.ServeMux) {
	if s != nil {
		s.relay.Routes(mux)
	}
}

// start runs the relay's background work until ctx ends.
func (s *relayStack) start(ctx context.Context, wg *sync.WaitGroup) {
	if s == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.relay.Run(ctx)
	}()
}

// shutdown closes the sockets with 1001 (going away) and writes the
// pending acknowledgements, while the store is still open.
func (s *relayStack) shutdown(ctx context.Context, log *logrus.Logger) {
	if s == nil {
		return
	}
	if err := s.relay.Shutdown(ctx); err != nil {
		log.WithError(err).Warn("relay shutdown incomplete")
	}
}

// buildRelay makes a relay of the config on db: the embedded one and the
// standalone `callpath relay` are built alike.
func buildRelay(cfg *conf.Config, db *store.DB, verifier auth.TokenVerifier, m *metrics.Relay, log *logrus.Entry) (*relay.Relay, error) {
	rc := cfg.Relay
	key, err := auth.LoadOrCreateDevIssuer(cfg.RelayKeyFile(), relay.RelayIssuer, relay.RelayAudience)
	if err != nil {
		return nil, fmt.Errorf("%w: relay.key_file: %v", conf.ErrInvalid, err)
	}
	m.Depth(db.RelayDepth)
	r, err := relay.New(relay.Config{
		Store: db, Verifier: verifier, BindingTokens: relay.NewBindingTokens(key, rc.TokenTTL),
		PublicURL: rc.PublicURL, RequiredScope: rc.RequiredScope,
		MaxConnections: capToFileLimit(rc.MaxConnections, log), MaxBindingsPerOwner: rc.MaxBindingsPerOwner,
		PingInterval: rc.PingInterval, PongTimeout: rc.PongTimeout, WriteTimeout: rc.WriteTimeout,
		MaxMessageBytes: int64(rc.MaxMessageBytes), MaxEventBytes: int64(rc.MaxEventBytes),
		AllowedOrigins: rc.AllowedOrigins, AckWindow: rc.AckWindow,
		Queue:        relay.QueueConfig{MaxEvents: rc.Queue.MaxEvents, MaxAge: rc.Queue.MaxAge, DropOldest: rc.Queue.WhenFull == "drop_oldest"},
		SinkTokenTTL: rc.SinkTokenTTL, BindingIdleTTL: rc.BindingIdleTTL, SweepInterval: rc.SweepInterval,
		Metrics: m, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: relay: %v", conf.ErrInvalid, err)
	}
	return r, nil
}

// fileReserve is kept free of sockets for everything else a process opens:
// the store, listeners, outgoing connections, SIP over TCP.
const fileReserve = 1024

// capToFileLimit lowers the admission cap below the process's open-file
// limit (each socket is a descriptor): past it accept fails for everything,
// not only for the relay. Go raises the soft limit to the hard one at
// start, so this is the hard limit.
func capToFileLimit(want int, log *logrus.Entry) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return want
	}
	room := int(min(lim.Cur, 1<<30)) - fileReserve
	if room >= want {
		return want
	}
	room = max(room, 1)
	log.WithFields(logrus.Fields{"max_connections": want, "open_file_limit": lim.Cur, "admitted": room}).
		Warn("relay.max_connections is above the open-file limit: admitting fewer sockets (raise ulimit -n)")
	return room
}

// errRelayListen: `callpath relay` needs an address.
var errRelayListen = errors.New("relay.listen: required to run the relay on its own")
