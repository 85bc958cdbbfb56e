package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
)

// Paths of the relay, served under the root of its HTTP server.
const (
	PathConnect  = "/relay/v1/connect"
	PathSinks    = "/relay/v1/sinks/"
	PathClientJS = "/relay/v1/client.js"
)

// QueueConfig bounds each binding's queue.
type QueueConfig struct {
	MaxEvents int           // events queued per binding
	MaxAge    time.Duration // older events are dropped (and the app told)
	// DropOldest: a full queue drops its oldest event for a new one (the
	// app is told); otherwise the sink answers 429 and the sender retries.
	DropOldest bool
}

// Config configures a Relay. Store and Verifier are required; zero values
// elsewhere take the defaults below.
type Config struct {
	Store    Store
	Verifier TokenVerifier // access tokens: the auth section's verifier
	// BindingTokens issues and checks relay-issued tokens; nil: none.
	BindingTokens *BindingTokens
	// PublicURL is where senders reach the relay ("https://relay.example"):
	// sinks are PublicURL + /relay/v1/sinks/ID. Empty: the scheme and Host
	// of each connect request (labs; behind a proxy set it).
	PublicURL string
	// RequiredScope, when set, must be in an access token's scopes.
	RequiredScope       string
	MaxConnections      int
	MaxBindingsPerOwner int
	PingInterval        time.Duration
	PongTimeout         time.Duration // extra silence allowed after a ping
	WriteTimeout        time.Duration // a socket that takes longer to accept a frame is closed
	MaxMessageBytes     int64         // app-to-relay frames
	MaxEventBytes       int64         // sink request bodies
	// AllowedOrigins are the browser origins allowed to connect
	// ("https://app.example.com"; "*": any). Empty: only the relay's own
	// origin. Requests without Origin (not from a browser) always may.
	AllowedOrigins []string
	AckWindow      int // unacknowledged events per socket
	Queue          QueueConfig
	SinkTokenTTL   time.Duration
	// SinkTokensPerBinding bounds the live sink tokens of a binding (each
	// connect adds one); the oldest go first.
	SinkTokensPerBinding int
	BindingIdleTTL       time.Duration // a binding without a socket this long is deleted
	SweepInterval        time.Duration // how often expiry runs
	AckFlushInterval     time.Duration // acknowledgements are written in batches this often

	Metrics Metrics
	Logger  *logrus.Entry
}

// Defaults for Config.
const (
	DefaultMaxConnections       = 16000
	DefaultPingInterval         = 25 * time.Second
	DefaultPongTimeout          = 10 * time.Second
	DefaultWriteTimeout         = 10 * time.Second
	DefaultMaxMessageBytes      = 4096
	DefaultMaxEventBytes        = 64 << 10
	DefaultAckWindow            = 64
	DefaultQueueMaxEvents       = 1000
	DefaultQueueMaxAge          = 24 * time.Hour
	DefaultSinkTokenTTL         = 7 * 24 * time.Hour
	DefaultSinkTokensPerBinding = 64
	DefaultBindingIdleTTL       = 30 * 24 * time.Hour
	DefaultSweepInterval        = 30 * time.Second
	DefaultAckFlushInterval     = 10 * time.Millisecond
)

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&c.MaxConnections, DefaultMaxConnections)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PongTimeout, DefaultPongTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	defInt(&c.AckWindow, DefaultAckWindow)
	defInt(&c.Queue.MaxEvents, DefaultQueueMaxEvents)
	def(&c.Queue.MaxAge, DefaultQueueMaxAge)
	def(&c.SinkTokenTTL, DefaultSinkTokenTTL)
	defInt(&c.SinkTokensPerBinding, DefaultSinkTokensPerBinding)
	def(&c.BindingIdleTTL, DefaultBindingIdleTTL)
	def(&c.SweepInterval, DefaultSweepInterval)
	def(&c.AckFlushInterval, DefaultAckFlushInterval)
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	if c.Logger == nil {
		c.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	return c
}

// Relay is the WebSocket notification relay: mount Routes on an HTTP
// server, run Run, call Shutdown before closing the store.
type Relay struct {
	cfg      Config
	log      *logrus.Entry
	m        Metrics
	hub      *hub
	acks     *ackBatcher
	upgrader websocket.Upgrader
	origins  map[string]bool
	anyOrig  bool
	bodies   sync.Pool // *bytes.Buffer for sink request bodies
	tokens   *tokenCache

	closing   atomic.Bool
	lifecycle sync.Mutex     // orders starting sessions against Shutdown
	wg        sync.WaitGroup // session goroutines
}

// New checks cfg and builds the relay.
func New(cfg Config) (*Relay, error) {
	if cfg.Store == nil || cfg.Verifier == nil {
		return nil, errors.New("relay: Store and Verifier are required")
	}
	cfg = cfg.withDefaults()
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("relay: public URL %q: want http(s)://host[:port][/path]", cfg.PublicURL)
		}
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, hub: newHub(cfg.MaxConnections),
		acks: newAckBatcher(cfg.Store, cfg.Metrics), origins: map[string]bool{},
		// Room for a few tokens per open socket; beyond, it starts over.
		tokens: newTokenCache(4 * cfg.MaxConnections),
		bodies: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			r.anyOrig = true
		}
		r.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	r.upgrader = websocket.Upgrader{
		// The socket's read buffer is only as big as an app's messages
		// (acks) need; the write buffer is borrowed from a pool per
		// message. Together with one goroutine per socket this is what
		// keeps a socket's memory small (BENCHMARKS.md).
		ReadBufferSize:   512,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{Subprotocol},
		CheckOrigin:      r.originAllowed,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeProblem(w, &SinkError{Status: status, Code: codeFor(status), Message: reason.Error()})
		},
	}
	return r, nil
}

// Routes mounts the relay's endpoints on mux.
func (r *Relay) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathConnect, r.serveConnect)
	mux.HandleFunc("POST "+PathSinks+"{binding}", r.serveSink)
	mux.HandleFunc(PathSinks+"{binding}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeProblem(w, &SinkError{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED", Message: "a sink takes POST only"})
	})
	mux.HandleFunc("GET "+PathClientJS, serveClientJS)
}

// Handler is a mux with the relay's endpoints only.
func (r *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	r.Routes(mux)
	return mux
}

// Connections is how many sockets are open (or being opened).
func (r *Relay) Connections() int { return int(r.hub.open.Load()) }

// Run writes acknowledgements and expires old events and idle bindings
// until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.acks.run(ctx, r.cfg.AckFlushInterval, func(err error) {
			r.log.WithError(err).Warn("writing acknowledgements failed; they are retried")
		})
	}()
	r.sweepLoop(ctx)
	<-done
	return nil
}

// Shutdown stops taking sockets, closes the open ones with 1001 (going
// away), waits for their goroutines until ctx ends and writes the pending
// acknowledgements. Sink requests are still taken: stop the HTTP server
// after this.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.lifecycle.Lock()
	r.closing.Store(true)
	r.lifecycle.Unlock()
	sessions := r.hub.all()
	var closing sync.WaitGroup
	// In parallel: a socket that does not take its close frame holds its
	// closer closeWait.
	sem := make(chan struct{}, 256)
	for _, s := range sessions {
		closing.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; closing.Done() }()
			s.close(websocket.CloseGoingAway, "relay shutting down", reasonShutdown)
		}()
	}
	closing.Wait()
	waited := make(chan struct{})
	go func() { r.wg.Wait(); close(waited) }()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = fmt.Errorf("relay shutdown: sockets still closing: %w", ctx.Err())
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if ferr := r.acks.flush(fctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("relay shutdown: acknowledgements: %w", ferr))
	}
	if len(sessions) > 0 {
		r.log.WithField("sockets", len(sessions)).Info("relay sockets closed (going away)")
	}
	return err
}

// sinkURL is the sink of a binding for a connect request.
func (r *Relay) sinkURL(req *http.Request, bindingID string) string {
	base := r.cfg.PublicURL
	if base == "" {
		scheme := "http"
		if req.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + req.Host
	}
	return base + PathSinks + bindingID
}

// originAllowed is the browser origin check of the WebSocket handshake.
func (r *Relay) originAllowed(req *http.Request) bool {
	origin := req.Header.Get("Origin")
	if origin == "" {
		return true // not a browser: it could send any Origin anyway
	}
	if r.anyOrig || r.origins[strings.ToLower(origin)] {
		return true
	}
	if len(r.origins) > 0 {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, req.Host)
}
