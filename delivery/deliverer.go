// Package delivery POSTs the CloudEvents of the durable outbox (store's
// outbox table) to their subscriptions' sinks: at least once, one event at a
// time per sink and in enqueue order, with retries and backoff, dead letters
// for what cannot be delivered, and a sink policy that keeps events away
// from private addresses (DESIGN §5).
package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/store"
)

// Store is the outbox the deliverer works on; *store.DB implements it.
type Store interface {
	// DueEvents returns the head (lowest seq) live event of up to limit
	// sinks, if due by now.
	DueEvents(ctx context.Context, now time.Time, limit int) ([]store.OutboxEvent, error)
	Delivered(ctx context.Context, seq int64) error
	Retry(ctx context.Context, seq int64, attempts int, next time.Time, lastError string) error
	Bury(ctx context.Context, seq int64, attempts int, lastError string) error
	DropSubscriptionEvents(ctx context.Context, subscriptionID, reason string) (int64, error)
	// HeadOfSink returns sink's first live event, if any.
	HeadOfSink(ctx context.Context, sink string) (store.OutboxEvent, bool, error)
}

var _ Store = (*store.DB)(nil)

// burst is how many events in a row a worker sends to one sink before it
// gives the sink back to the loop (fairness across sinks). Within a burst
// the next event is found with one index probe (HeadOfSink) rather than a
// scan of every sink's head: that scan, once per event, capped delivery
// at about 2,900 events/s.
const burst = 64

// Outcomes reported to Metrics.
const (
	OutcomeDelivered = "delivered" // 2xx: removed from the outbox
	OutcomeRetry     = "retry"     // failed, will be tried again
	OutcomeDead      = "dead"      // buried: refused for good, or retries exhausted
	OutcomeGone      = "gone"      // 410: the subscription's events buried, OnSinkGone called
)

// Metrics receives one call per finished attempt (an attempt abandoned at
// shutdown is not reported). attempts counts this one; age is how long the
// event has been in the outbox.
type Metrics interface {
	Attempt(outcome string, attempts int, age time.Duration)
}

// Defaults for Options.
const (
	DefaultWorkers      = 8
	DefaultTimeout      = 10 * time.Second
	DefaultBaseDelay    = time.Second
	DefaultMaxDelay     = 5 * time.Minute
	DefaultMaxAttempts  = 12
	DefaultMaxAge       = 24 * time.Hour
	DefaultRecheck      = 5 * time.Second
	DefaultDrainTimeout = 5 * time.Second
)

// GoneReason is the dead-letter reason of the events buried after a 410.
const GoneReason = "sink answered 410 Gone"

// Options configures a Deliverer. The zero value is usable: strict sink
// policy, system roots, defaults above.
type Options struct {
	Policy   SinkPolicy
	RootCAs  *x509.CertPool // nil: the system roots
	Resolver *net.Resolver  // nil: the default resolver

	Workers      int           // sinks served at once (one request in flight per sink)
	Timeout      time.Duration // per POST, connect to end of response body
	BaseDelay    time.Duration // first retry delay
	MaxDelay     time.Duration // backoff cap (before jitter) and cap on Retry-After
	MaxAttempts  int           // attempts before an event is buried
	MaxAge       time.Duration // an event failing after this long is buried
	Recheck      time.Duration // the outbox is re-read at least this often
	DrainTimeout time.Duration // after Run's ctx ends, how long in-flight POSTs may finish

	// OnSinkGone is called (from a worker goroutine, once per 410 answer)
	// after the subscription's events were buried: the CAMARA layer ends
	// the subscription. It should not block for long.
	OnSinkGone func(subscriptionID string)
	// Local, if set, names the sinks served in this process (the embedded
	// relay's), delivered to without the network.
	Local   LocalSinks
	Metrics Metrics
	Logger  *logrus.Entry

	// For tests: the clock and the jitter source (values in [0, 1)); both
	// are called from several goroutines.
	Now  func() time.Time
	Rand func() float64
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = DefaultBaseDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultRecheck
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Logger == nil {
		o.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return o
}

// Deliverer sends outbox events to their sinks. Create it with New, start
// Run in a goroutine, call Notify after enqueueing.
type Deliverer struct {
	st      Store
	opts    Options
	log     *logrus.Entry
	client  *http.Client
	notify  chan struct{}
	running atomic.Bool
}

// New makes a Deliverer on st.
func New(st Store, opts Options) *Deliverer {
	opts = opts.withDefaults()
	dialer := &net.Dialer{
		Timeout:   opts.Timeout,
		KeepAlive: 30 * time.Second,
		Resolver:  opts.Resolver,
		Control:   opts.Policy.Control, // the address check, after resolution
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would connect for us and bypass the address check
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * opts.Workers,
		// Many subscriptions share a sink host (an app's notification
		// server): every worker may talk to it at once, and a connection
		// closed after each event costs a TLS handshake per event (37 % of
		// the deliverer's CPU in bench/eventload with one idle connection
		// per host).
		MaxIdleConnsPerHost: opts.Workers,
		IdleConnTimeout:     90 * time.Second,
	}
	var rt http.RoundTripper = tr
	if opts.Local != nil {
		rt = localTransport{local: opts.Local, next: tr}
	}
	return &Deliverer{
		st:   st,
		opts: opts,
		log:  opts.Logger.WithField("component", "delivery"),
		client: &http.Client{
			Transport: rt,
			// Never follow a redirect: the sink could bounce the POST (and
			// its bearer token) anywhere. The 3xx is a permanent failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		notify: make(chan struct{}, 1),
	}
}

// Notify wakes the deliverer at once (producers call it after committing
// events). It never blocks.
func (d *Deliverer) Notify() {
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

type done struct {
	sink string
	hold time.Duration // keep the sink idle this long (the store failed)
}

// Run delivers until ctx ends, then lets the POSTs in flight finish for up
// to DrainTimeout, abandons the rest (their events stay in the outbox and
// are sent again later: at least once) and returns. Close the store only
// after Run has returned. Run may be called once.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("delivery: Run called twice")
	}
	defer d.client.CloseIdleConnections()
	// Work outlives ctx by the drain period.
	workCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()

	inflight := map[string]bool{}
	hold := map[string]time.Time{}
	results := make(chan done, d.opts.Workers)
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		wait := d.dispatch(ctx, workCtx, inflight, hold, results, &wg)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			d.drain(inflight, results, abandon, &wg)
			return nil
		case <-d.notify:
		case r := <-results:
			d.finish(r, inflight, hold)
		case <-timer.C:
		}
	}
}

func (d *Deliverer) finish(r done, inflight map[string]bool, hold map[string]time.Time) {
	delete(inflight, r.sink)
	if r.hold > 0 {
		hold[r.sink] = d.opts.Now().Add(r.hold)
	}
}

func (d *Deliverer) drain(inflight map[string]bool, results chan done, abandon context.CancelFunc, wg *sync.WaitGroup) {
	if len(inflight) > 0 {
		d.log.WithField("in_flight", len(inflight)).Info("stopping: waiting for the POSTs in flight")
		t := time.NewTimer(d.opts.DrainTimeout)
		defer t.Stop()
	wait:
		for len(inflight) > 0 {
			select {
			case r := <-results:
				delete(inflight, r.sink)
			case <-t.C:
				d.log.WithField("in_flight", len(inflight)).Warn("stopping: abandoning the POSTs in flight; their events stay in the outbox")
				break wait
			}
		}
	}
	abandon()
	wg.Wait()
}

// dispatch starts a worker for each due sink it can serve and returns how
// long to sleep before looking again (unless woken earlier).
func (d *Deliverer) dispatch(ctx, workCtx context.Context, inflight map[string]bool, hold map[string]time.Time,
	results chan<- done, wg *sync.WaitGroup) time.Duration {
	wait := d.opts.Recheck
	if ctx.Err() != nil || len(inflight) >= d.opts.Workers {
		return wait // a finishing worker wakes us
	}
	now := d.opts.Now()
	for s, until := range hold {
		if !now.Before(until) {
			delete(hold, s)
		}
	}
	// Looking ahead by Recheck tells when the next event falls due, so the
	// loop sleeps exactly until then. The rows come ordered by due time;
	// the sinks in flight (at most Workers rows) come first, hence the
	// limit.
	evs, err := d.st.DueEvents(ctx, now.Add(d.opts.Recheck), 2*d.opts.Workers+len(hold)+1)
	if err != nil {
		if ctx.Err() == nil {
			d.log.WithError(err).Error("reading the outbox")
		}
		return wait
	}
	for _, ev := range evs {
		if inflight[ev.Sink] {
			continue
		}
		if until, ok := hold[ev.Sink]; ok {
			wait = min(wait, until.Sub(now))
			continue
		}
		if ev.NextAt.After(now) {
			wait = min(wait, ev.NextAt.Sub(now))
			continue
		}
		if len(inflight) >= d.opts.Workers {
			break // more is due: a finishing worker wakes us
		}
		inflight[ev.Sink] = true
		wg.Add(1)
		go func(ev store.OutboxEvent) {
			defer wg.Done()
			results <- done{sink: ev.Sink, hold: d.deliverBurst(ctx, workCtx, ev)}
		}(ev)
	}
	return max(wait, time.Millisecond)
}

// deliverBurst delivers ev and then, while the sink takes them, its next
// due events (up to burst), in order; it returns the hold of the last
// attempt. It stops at a failure (the event waits for its retry), when the
// sink has nothing due, or when ctx ends.
func (d *Deliverer) deliverBurst(ctx, workCtx context.Context, ev store.OutboxEvent) time.Duration {
	for i := 1; ; i++ {
		hold := d.deliver(workCtx, ev)
		if hold > 0 || i >= burst || ctx.Err() != nil {
			return hold
		}
		next, ok, err := d.st.HeadOfSink(workCtx, ev.Sink)
		if err != nil || !ok || next.Seq == ev.Seq || next.NextAt.After(d.opts.Now()) {
			return 0
		}
		ev = next
	}
}

// storeTimeout bounds the outbox write after an attempt; it runs even while
// stopping, so that an event a sink has taken is not sent again.
const storeTimeout = 5 * time.Second

// storeHold is how long a sink rests when its outcome could not be written.
const storeHold = time.Second

var correlatorRE = regexp.MustCompile(`^[a-zA-Z0-9\-_:;./<>{}]{1,256}$`)

// attempt is what one POST came to.
type attempt struct {
	outcome  string // OutcomeDelivered, OutcomeRetry, OutcomeDead, OutcomeGone
	reason   string // for the dead letter / last_error; never the token, body or full URL
	after    time.Duration
	hasAfter bool
}

// deliver POSTs one event and records the outcome. It returns how long the
// sink should rest (non-zero when the store could not be written).
func (d *Deliverer) deliver(ctx context.Context, ev store.OutboxEvent) time.Duration {
	host := sinkHost(ev.Sink)
	log := d.log.WithFields(logrus.Fields{"event_id": ev.EventID, "subscription_id": ev.SubscriptionID, "sink_host": host})
	n := ev.Attempts + 1
	a := d.post(ctx, ev, host)
	if ctx.Err() != nil && a.outcome == OutcomeRetry {
		// Cut short by the shutdown, not the sink's fault: not an attempt.
		// An answer that did arrive is still recorded below.
		log.Debug("POST abandoned at shutdown; the event stays in the outbox")
		return 0
	}
	now := d.opts.Now()
	age := now.Sub(ev.CreatedAt)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()

	var err error
	outcome := a.outcome
	switch outcome {
	case OutcomeDelivered:
		if err = d.st.Delivered(sctx, ev.Seq); err == nil {
			log.WithField("attempts", n).Debug("event delivered")
		}
	case OutcomeGone:
		var dropped int64
		dropped, err = d.st.DropSubscriptionEvents(sctx, ev.SubscriptionID, GoneReason)
		log.WithField("buried", dropped).Warn("sink answered 410 Gone: the subscription's events are buried")
		if err == nil && d.opts.OnSinkGone != nil {
			d.opts.OnSinkGone(ev.SubscriptionID)
		}
	case OutcomeRetry:
		switch {
		case n >= d.opts.MaxAttempts:
			outcome = OutcomeDead
			a.reason = fmt.Sprintf("gave up after %d attempts: %s", n, a.reason)
		case age >= d.opts.MaxAge:
			outcome = OutcomeDead
			a.reason = fmt.Sprintf("gave up after %s (%d attempts): %s", d.opts.MaxAge, n, a.reason)
		default:
			delay := retryDelay(n, d.opts.BaseDelay, d.opts.MaxDelay, d.opts.Rand(), a.after, a.hasAfter)
			err = d.st.Retry(sctx, ev.Seq, n, now.Add(delay), a.reason)
			log.WithFields(logrus.Fields{"attempts": n, "retry_in": delay, "error": a.reason}).Info("event not delivered; will retry")
		}
		if outcome == OutcomeDead {
			err = d.st.Bury(sctx, ev.Seq, n, a.reason)
			log.WithFields(logrus.Fields{"attempts": n, "error": a.reason}).Warn("event buried as a dead letter")
		}
	case OutcomeDead:
		err = d.st.Bury(sctx, ev.Seq, n, a.reason)
		log.WithFields(logrus.Fields{"attempts": n, "error": a.reason}).Warn("sink refused the event for good; buried as a dead letter")
	}
	if err != nil {
		log.WithError(err).Error("recording the delivery outcome; the event will be sent again")
		return storeHold
	}
	if d.opts.Metrics != nil {
		d.opts.Metrics.Attempt(outcome, n, age)
	}
	return 0
}

// post makes the request and classifies the answer.
func (d *Deliverer) post(ctx context.Context, ev store.OutboxEvent, host string) attempt {
	if err := d.opts.Policy.ValidateSink(ev.Sink); err != nil && !d.isLocal(ev.Sink) {
		return attempt{outcome: OutcomeDead, reason: err.Error()}
	}
	rctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, ev.Sink, bytes.NewReader(ev.Body))
	if err != nil {
		return attempt{outcome: OutcomeDead, reason: "cannot build the request: " + stripURL(err).Error()}
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "callpath")
	if ev.SinkToken != "" {
		req.Header.Set("Authorization", "Bearer "+ev.SinkToken)
	}
	if correlatorRE.MatchString(ev.EventID) {
		req.Header.Set("x-correlator", ev.EventID)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		err = stripURL(err)
		var ae *AddressError
		if errors.As(err, &ae) {
			return attempt{outcome: OutcomeDead, reason: "POST to " + host + ": " + ae.Error()}
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			return attempt{outcome: OutcomeRetry, reason: fmt.Sprintf("POST to %s: no answer within %s", host, d.opts.Timeout)}
		}
		return attempt{outcome: OutcomeRetry, reason: "POST to " + host + ": " + err.Error()}
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return classifyStatus(resp, d.opts.Now())
}

func classifyStatus(resp *http.Response, now time.Time) attempt {
	code := resp.StatusCode
	reason := "sink answered " + strconv.Itoa(code)
	if t := http.StatusText(code); t != "" {
		reason += " " + t
	}
	switch {
	case code >= 200 && code < 300:
		return attempt{outcome: OutcomeDelivered}
	case code == http.StatusGone:
		return attempt{outcome: OutcomeGone, reason: reason}
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests,
		code >= 500 && code < 600:
		after, ok := retryAfter(resp.Header, now)
		return attempt{outcome: OutcomeRetry, reason: reason, after: after, hasAfter: ok}
	case code >= 300 && code < 400:
		return attempt{outcome: OutcomeDead, reason: reason + " (redirects are not followed)"}
	default:
		// 400, 401, 403, 404, 413, 415 … and anything unknown: the sink
		// refuses this event, sending it again would not change that.
		return attempt{outcome: OutcomeDead, reason: reason}
	}
}

// sinkHost is what the logs show of a sink: its host (the path or query
// may carry secrets).
func sinkHost(sink string) string {
	u, err := url.Parse(sink)
	if err != nil || u.Host == "" {
		return "(invalid sink)"
	}
	return u.Host
}

// stripURL drops the URL (which may carry secrets in its query) from an
// error of the HTTP client.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
