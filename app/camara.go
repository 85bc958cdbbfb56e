package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"callpath/camara"
	"callpath/conf"
	"callpath/delivery"
	"callpath/devreg"
	"callpath/metrics"
	"callpath/store"
	"callpath/upstream"

	"github.com/sirupsen/logrus"
)

// The r2.2 base paths, below camara.base_path.
const (
	registrationPath = "/webrtc-registration/v0.3"
	eventsPath       = "/webrtc-events/v0.2"
)

// camaraStack is the CAMARA adapter: device registrations, event
// subscriptions, and the deliverer of their CloudEvents.
type camaraStack struct {
	events    *camara.Events
	devices   *devreg.Service
	deliverer *delivery.Deliverer
	reg       *camara.Registration
	metrics   *metrics.CAMARA
	log       *logrus.Entry
	ownSinks  *ownSinks // the embedded relay's sinks
}

// newCAMARA builds the adapter on the gateway's store, token verifier and
// upstream accounts.
func (a *App) newCAMARA(cfg *conf.Config) (*camaraStack, error) {
	m := cfg.CAMARA
	policy := delivery.SinkPolicy{AllowHTTPHosts: m.Sinks.AllowHTTPHosts}
	for _, p := range m.Sinks.AllowCIDRs {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%w: camara.sinks.allow_cidrs: %v", conf.ErrInvalid, err)
		}
		policy.AllowCIDRs = append(policy.AllowCIDRs, prefix)
	}
	var sinkRoots *x509.CertPool
	if m.Sinks.CAFile != "" {
		pool, err := loadCAs("camara.sinks.ca_file", m.Sinks.CAFile)
		if err != nil {
			return nil, err
		}
		sinkRoots = pool
	}
	c := &camaraStack{metrics: a.metrics.CAMARA, log: a.log.WithField("component", "camara"), ownSinks: &ownSinks{a: a}}
	var err error
	c.events, err = camara.NewEvents(camara.EventsConfig{
		DB: a.db, Verifier: a.verifier, BasePath: m.BasePath + eventsPath,
		ValidateSink: func(sink string) error {
			if c.ownSinks.Is(sink) {
				return nil // the embedded relay's: delivered in-process
			}
			return policy.ValidateSink(sink)
		},
		MaxPerSubscriber: m.MaxSubscriptions,
		// PUT /subscriptions/{id} (main's refresh): the call flows need a
		// subscription to outlive a call; r2.2 lacks it.
		EnableUpdate: true,
		Notify:       func() { c.deliverer.Notify() },
		// initialEvent on a session-status subscription sends the state the
		// call is in (the WebRTC gateway keeps it; none without media).
		CurrentSession: a.currentSession,
		CheckRegistration: func(ctx context.Context, number, id string) error {
			if _, err := c.devices.Get(ctx, number, id); err != nil {
				return camara.ErrSubscriptionMismatch
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	c.devices = &devreg.Service{
		Store: store.DeviceRegistrations{DB: a.db, Ended: func(tx *store.Tx, r devreg.Registration, reason string, _ time.Time) error {
			_, err := c.events.PublishTx(tx, camara.Event{PhoneNumber: r.PhoneNumber, Type: camara.TypeRegistrationEnds,
				RegistrationID: r.ID, Data: map[string]any{"registrationId": r.ID, "terminationReason": reason}})
			return err
		}, Deleted: func(tx *store.Tx, id string) error {
			_, err := c.events.EndRegistrationTx(tx, id)
			return err
		}},
		Upstream: a.accounts,
		Ended:    func() { c.events.Notify() },
		Policy:   devreg.Policy{DefaultTTL: m.Registration.DefaultTTL, MinTTL: m.Registration.MinTTL, MaxTTL: m.Registration.MaxTTL},
	}
	c.deliverer = delivery.New(a.db, delivery.Options{
		Policy: policy, Local: c.ownSinks, RootCAs: sinkRoots, Workers: m.Delivery.Workers, Timeout: m.Delivery.Timeout,
		BaseDelay: m.Delivery.RetryMin, MaxDelay: m.Delivery.RetryMax, MaxAttempts: m.Delivery.MaxAttempts, MaxAge: m.Delivery.MaxAge,
		OnSinkGone: func(id string) {
			// The subscription cannot be told (its sink is gone); it ends.
			if _, err := c.events.End(context.Background(), id, camara.ReasonSubscriptionDeleted, "The sink answered 410 Gone."); err != nil {
				a.log.WithError(err).WithField("subscription_id", id).Warn("ending a subscription whose sink is gone failed")
			}
		},
		Metrics: deliveryMetrics{c.metrics}, Logger: a.log.WithField("component", "delivery"),
	})
	c.reg = &camara.Registration{BasePath: m.BasePath + registrationPath, Verifier: a.verifier, Devices: c.devices}
	c.metrics.OutboxDepth(a.db.OutboxDepth)
	return c, nil
}

// deliveryMetrics adapts the deliverer's attempts to Prometheus.
type deliveryMetrics struct{ m *metrics.CAMARA }

func (d deliveryMetrics) Attempt(outcome string, attempts int, age time.Duration) {
	d.m.Delivered(outcome, attempts, age)
}

// routes mounts both APIs on mux, counted per operation.
func (c *camaraStack) routes(mux *http.ServeMux, base string) {
	mux.Handle(base+registrationPath+"/", c.counted("webrtc-registration", c.reg.Handler()))
	mux.Handle(base+eventsPath+"/", c.counted("webrtc-events", c.events.Handler()))
}

// counted records each request's operation (method and route), code and
// latency.
func (c *camaraStack) counted(api string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		op := operationOf(r)
		c.metrics.Request(api, op, sw.status, time.Since(start))
		if sw.cause != nil {
			c.log.WithFields(logrus.Fields{"api": api, "operation": op, "status": sw.status,
				"x_correlator": sw.Header().Get(camara.CorrelatorHeader)}).WithError(sw.cause).Error("CAMARA request failed")
		}
	})
}

// operationOf names the operation by method and path shape (ids replaced),
// keeping the label set small.
func operationOf(r *http.Request) string {
	path := r.URL.Path
	for i, seg := 0, 0; i < len(path); i++ {
		if path[i] == '/' {
			seg++
			if seg == 5 { // /webrtc-x/v0.y/collection/{id}…
				return r.Method + " " + path[:i] + "/{id}"
			}
		}
	}
	return r.Method + " " + path
}

type statusWriter struct {
	http.ResponseWriter
	status int
	cause  error // behind a 5xx answer
}

// RecordCause keeps the error behind a 5xx answer for the log
// (camara.CauseRecorder).
func (s *statusWriter) RecordCause(err error) { s.cause = err }

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// run delivers events and ends what expires, until ctx ends; it returns
// once the deliverer has drained.
func (c *camaraStack) run(ctx context.Context, sweepEvery time.Duration, onError func(what string, err error)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.deliverer.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			onError("event delivery", err)
		}
	}()
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-tick.C:
			if _, err := c.devices.Sweep(ctx); err != nil {
				onError("expiring device registrations", err)
			}
			if _, err := c.events.Sweep(ctx, time.Now()); err != nil {
				onError("expiring subscriptions", err)
			}
		}
	}
}

// watchUpstream ends the device registrations of a number whose binding at
// the telco's registrar is lost (NETWORK_TERMINATED). The bus handler must
// not block: the work runs on its own goroutine.
func (c *camaraStack) watchUpstream(ctx context.Context, u *upstream.Client, onError func(what string, err error)) func() {
	return u.Subscribe(func(e upstream.Event) {
		lost := e.State == upstream.StateFailed && e.BindingLost ||
			e.State == upstream.StateEnded && !strings.HasPrefix(e.Reason, "unregistered") && e.Reason != "removed"
		if !lost {
			return
		}
		go func() {
			if _, err := c.devices.NetworkEnded(ctx, e.Number); err != nil {
				onError("ending registrations of a lost binding", err)
			}
		}()
	})
}
