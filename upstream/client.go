// Package upstream registers numbers at the telco's registrar when the
// telco issues a SIP account per number (DESIGN §1): one REGISTER dialog
// per account, with digest authentication, refresh before expiry, backoff
// and failover, un-registration, and state changes published on a bus.
// It is a well-mannered SIP UA in the manner of libeXosip2's registration
// handling; the transaction layer is the B2BUA's.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/eventbus"
	"callpath/sipstack"
)

// UA is the SIP user agent the client registers through (the B2BUA).
type UA interface {
	// Request adds our Via and sends req as a new client transaction; for
	// TLS it first opens a connection verified for the Request-URI's host.
	// It may block (a TLS handshake): the client never calls it on a read
	// loop.
	Request(ctx context.Context, req *sip.Request, cb sipstack.Callbacks) (sip.ClientTransaction, error)
	// Contact is our reachable address on transport ("UDP", "TCP", "TLS").
	Contact(transport string) sip.Uri
}

// Metrics counts what the client does (metrics.Upstream does).
type Metrics interface {
	// Response counts a final response to a REGISTER.
	Response(code int)
	// Failure counts a REGISTER that got no final response.
	Failure(timeout bool)
	// AuthFailure counts credentials the registrar refused.
	AuthFailure()
}

// Config is the client's policy.
type Config struct {
	Expires       time.Duration // binding lifetime asked for when the account names none
	RefreshMargin time.Duration // refresh this long before expiry (at the latest at half-life)
	RetryMin      time.Duration // first backoff after a failure
	RetryMax      time.Duration // backoff ceiling
	Supported     []string      // option tags sent in Supported ("path", "outbound")
	UserAgent     string
	MaxForwards   int
}

// Client keeps many registrations, each with its own state and timer.
type Client struct {
	cfg      Config
	ua       UA
	clock    Clock
	resolver sipstack.DNSResolver
	metrics  Metrics
	log      *logrus.Entry
	bus      eventbus.Bus[Event]

	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	regs map[string]*registration
}

// Deps are the client's parts; Clock, Resolver and Metrics may be nil.
type Deps struct {
	UA       UA
	Clock    Clock
	Resolver sipstack.DNSResolver
	Metrics  Metrics
	Log      *logrus.Entry
}

// New builds a client.
func New(cfg Config, d Deps) (*Client, error) {
	if d.UA == nil {
		return nil, errors.New("upstream: a UA is required")
	}
	if cfg.Expires <= 0 {
		cfg.Expires = time.Hour
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 2 * time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(cfg.RetryMin, 5*time.Minute)
	}
	if cfg.MaxForwards <= 0 {
		cfg.MaxForwards = 70
	}
	if d.Clock == nil {
		d.Clock = realClock{}
	}
	if d.Metrics == nil {
		d.Metrics = noMetrics{}
	}
	if d.Log == nil {
		l := logrus.New()
		d.Log = logrus.NewEntry(l)
	}
	c := &Client{cfg: cfg, ua: d.UA, clock: d.Clock, resolver: d.Resolver, metrics: d.Metrics, log: d.Log,
		regs: make(map[string]*registration)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Subscribe adds a handler of state changes; it must not block.
func (c *Client) Subscribe(h func(Event)) (unsubscribe func()) { return c.bus.Subscribe(h) }

// Register starts registering an account. An account already held under
// the same ID is replaced (its registration refreshed with the new data).
func (c *Client) Register(a Account) error {
	if err := a.validate(); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	ru, err := a.registrarURI()
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	c.mu.Lock()
	r := c.regs[a.ID]
	if r == nil {
		r = newRegistration(c, a, ru)
		c.regs[a.ID] = r
	}
	c.mu.Unlock()
	r.start(a, ru)
	return nil
}

// ErrUnknown is an operation on an ID the client does not hold.
var ErrUnknown = errors.New("upstream: no such registration")

// Unregister removes the account's binding at the registrar (REGISTER with
// Expires: 0 for our Contact), then forgets it. all removes every contact
// of the address of record instead (Contact: *), other devices' included.
func (c *Client) Unregister(id string, all bool) error {
	r := c.get(id)
	if r == nil {
		return ErrUnknown
	}
	r.unregister(all)
	return nil
}

// Remove forgets a registration without sending anything: its binding
// lapses at the registrar by itself.
func (c *Client) Remove(id string) error {
	r := c.get(id)
	if r == nil {
		return ErrUnknown
	}
	r.end("removed")
	return nil
}

// Status is a snapshot of one registration.
type Status struct {
	State   State
	Expires time.Time // end of the binding last granted; zero if none
	Reason  string    // of the last failure
}

// Status returns the registration's state.
func (c *Client) Status(id string) (Status, bool) {
	r := c.get(id)
	if r == nil {
		return Status{}, false
	}
	return r.status(), true
}

// Counts returns how many registrations are in each state.
func (c *Client) Counts() map[State]int {
	c.mu.Lock()
	regs := make([]*registration, 0, len(c.regs))
	for _, r := range c.regs {
		regs = append(regs, r)
	}
	c.mu.Unlock()
	out := make(map[State]int, len(States))
	for _, r := range regs {
		out[r.status().State]++
	}
	return out
}

// Close stops every timer; bindings are left to lapse (use Unregister
// first for a clean stop).
func (c *Client) Close() {
	c.cancel()
	c.mu.Lock()
	regs := c.regs
	c.regs = map[string]*registration{}
	c.mu.Unlock()
	for _, r := range regs {
		r.stop()
	}
}

func (c *Client) get(id string) *registration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[id]
}

// forget drops r once it has ended.
func (c *Client) forget(r *registration) {
	c.mu.Lock()
	if c.regs[r.acct.ID] == r {
		delete(c.regs, r.acct.ID)
	}
	c.mu.Unlock()
}

func (c *Client) publish(e Event) {
	e.At = c.clock.Now()
	c.bus.Publish(e)
}

// refreshDelay is when a binding granted for d is renewed: RefreshMargin
// before it lapses, but not before half-life (so short bindings are not
// refreshed continuously), and never sooner than a second.
func (c *Client) refreshDelay(d time.Duration) time.Duration {
	return max(d/2, d-c.cfg.RefreshMargin, time.Second)
}

// backoff is the wait after the n-th failure in a row: RetryMin doubled
// per failure up to RetryMax, with ±20 % jitter so that many registrations
// failing together (a registrar restart) do not come back together.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.RetryMin
	for i := 1; i < n && d < c.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.RetryMax)
	jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(d))
	return d + jitter
}

type noMetrics struct{}

func (noMetrics) Response(int) {}
func (noMetrics) Failure(bool) {}
func (noMetrics) AuthFailure() {}
