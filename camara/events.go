package camara

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"callpath/store"
)

// webrtc-events r2.2 event types.
const (
	EventTypePrefix         = "org.camaraproject.webrtc-events.v0."
	TypeSessionStatus       = EventTypePrefix + "session-status"
	TypeSessionInvitation   = EventTypePrefix + "session-invitation"
	TypeRegistrationEnds    = EventTypePrefix + "registration-ends"
	TypeSubscriptionEnded   = EventTypePrefix + "subscription-ended"
	eventsScopeRead         = "webrtc-events:read"
	eventsScopeDelete       = "webrtc-events:delete"
	eventsScopeUpdate       = "webrtc-events:update"
	defaultEventsBasePath   = "/webrtc-events/v0.2"
	defaultEventsSource     = "urn:callpath:webrtc-events"
	defaultSubscriptionTTL  = 24 * time.Hour
	defaultMaxTTL           = 7 * 24 * time.Hour
	defaultTokenLead        = time.Minute
	defaultRetention        = 24 * time.Hour
	defaultMaxPerSubscriber = 100
)

// subscribableTypes are the types a subscription may ask for.
var subscribableTypes = []string{TypeSessionStatus, TypeSessionInvitation, TypeRegistrationEnds}

// CreateScope is the scope that allows subscribing to eventType.
func CreateScope(eventType string) string { return "webrtc-events:" + eventType + ":create" }

// Termination reasons of subscription-ended (TerminationReason).
const (
	ReasonMaxEventsReached    = "MAX_EVENTS_REACHED"
	ReasonNetworkTerminated   = "NETWORK_TERMINATED"
	ReasonSubscriptionExpired = "SUBSCRIPTION_EXPIRED"
	ReasonAccessTokenExpired  = "ACCESS_TOKEN_EXPIRED"
	ReasonSubscriptionDeleted = "SUBSCRIPTION_DELETED"
)

// statusAfter is the final status of a subscription ended for reason:
// EXPIRED for the reasons the spec lists with it (and for a reached event
// maximum), DELETED when the requester or the server removed it.
func statusAfter(reason string) string {
	switch reason {
	case ReasonSubscriptionDeleted, ReasonNetworkTerminated:
		return store.SubscriptionDeleted
	default:
		return store.SubscriptionExpired
	}
}

// EventsConfig configures the webrtc-events API.
type EventsConfig struct {
	DB       *store.DB
	Verifier TokenVerifier
	// BasePath is where the API lives; default "/webrtc-events/v0.2".
	BasePath string
	// Source is the CloudEvents source of the events; default
	// "urn:callpath:webrtc-events".
	Source string
	// ValidateSink checks a sink URL (the deliverer's policy: https,
	// allowed hosts, no private ranges). Nil: any https URL with a host.
	ValidateSink func(string) error
	// Notify is called after a transaction that enqueued events has
	// committed (wakes the deliverer). May be nil.
	Notify func()
	// Now is the clock; default time.Now.
	Now func() time.Time
	// DefaultTTL is the lifetime of a subscription that asks for no expiry
	// (24 h); MaxTTL caps a requested one (7 days).
	DefaultTTL, MaxTTL time.Duration
	// TokenLead ends a subscription with ACCESS_TOKEN_EXPIRED this long
	// before its sink token expires, so that subscription-ended can still
	// be delivered with it (1 min).
	TokenLead time.Duration
	// CheckRegistration, when set, checks that the registrationId a
	// subscription names is a live registration of the subscriber. Its
	// error is answered as it maps (a *Error as is; use ErrPermissionDenied
	// or ErrSubscriptionMismatch: POST declares no 404).
	CheckRegistration func(ctx context.Context, phoneNumber, registrationID string) error
	// MaxPerSubscriber caps the active subscriptions of one subscriber
	// (100); beyond it POST answers 429 QUOTA_EXCEEDED.
	MaxPerSubscriber int
	// EnableUpdate serves PUT /subscriptions/{id} (scope
	// webrtc-events:update) as on the main branch: r2.2 has no way to
	// refresh a subscription, which the provider call flows need while
	// calls are ongoing (#78). Off by default: it is not in r2.2.
	EnableUpdate bool
	// Retention keeps an ended subscription readable (status EXPIRED or
	// DELETED) this long before Sweep purges it (24 h).
	Retention time.Duration
	// CurrentSession, when set, gives the current state of media session
	// id of the subscriber (MediaSessionOf it), false when there is none.
	// A session-status subscription created with initialEvent true then
	// gets it as its first event, in the same transaction: an app
	// subscribes after POST /sessions, by when the call may have moved on.
	CurrentSession func(ctx context.Context, phoneNumber, id string) (any, bool)
}

// Events is the webrtc-events subscription service: its HTTP API
// (Handler), the end of subscriptions on expiry (Sweep) and the publishing
// of events to the subscriptions (Publish).
type Events struct {
	cfg EventsConfig
}

// NewEvents checks cfg and fills in its defaults.
func NewEvents(cfg EventsConfig) (*Events, error) {
	if cfg.DB == nil || cfg.Verifier == nil {
		return nil, errors.New("camara events: DB and Verifier are required")
	}
	if cfg.BasePath == "" {
		cfg.BasePath = defaultEventsBasePath
	}
	if cfg.Source == "" {
		cfg.Source = defaultEventsSource
	}
	if cfg.ValidateSink == nil {
		cfg.ValidateSink = HTTPSOnly
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = defaultSubscriptionTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = defaultMaxTTL
	}
	if cfg.DefaultTTL > cfg.MaxTTL {
		cfg.DefaultTTL = cfg.MaxTTL
	}
	if cfg.TokenLead <= 0 {
		cfg.TokenLead = defaultTokenLead
	}
	if cfg.MaxPerSubscriber <= 0 {
		cfg.MaxPerSubscriber = defaultMaxPerSubscriber
	}
	if cfg.Retention <= 0 {
		cfg.Retention = defaultRetention
	}
	return &Events{cfg: cfg}, nil
}

// HTTPSOnly accepts an absolute https URL with a host and nothing else.
func HTTPSOnly(sink string) error {
	u, err := url.Parse(sink)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("sink must be an absolute https URL")
	}
	return nil
}

func (e *Events) notify() {
	if e.cfg.Notify != nil {
		e.cfg.Notify()
	}
}

// checkOwner is where a subscription of another subscriber is refused: it
// is not found, like an unknown one, so that its existence never leaks.
func checkOwner(s store.Subscription, number string) error {
	if s.OwnerNumber != number {
		return fmt.Errorf("%w: %s", store.ErrSubscriptionNotFound, s.ID)
	}
	return nil
}

// owned returns subscription id if it belongs to number (checkOwner).
func (e *Events) owned(ctx context.Context, number, id string) (store.Subscription, error) {
	s, err := e.cfg.DB.Subscription(ctx, id)
	if err != nil {
		return store.Subscription{}, err
	}
	return s, checkOwner(s, number)
}

// endTx ends subscription s in tx with reason and enqueues its
// subscription-ended event; false when it had already ended.
func (e *Events) endTx(tx *store.Tx, s store.Subscription, reason, description string, now time.Time) (bool, error) {
	ok, err := tx.EndSubscription(s.ID, statusAfter(reason), reason, now)
	if err != nil || !ok {
		return false, err
	}
	data := map[string]any{"subscriptionId": s.ID, "terminationReason": reason}
	if description != "" {
		data["terminationDescription"] = description
	}
	ev, err := outboxEvent(e.cfg.Source, s, TypeSubscriptionEnded, data, now)
	if err != nil {
		return false, err
	}
	return true, tx.Enqueue(ev)
}

// End ends a subscription on the server's initiative (e.g. reason
// NETWORK_TERMINATED) with its subscription-ended event; false when it was
// unknown or had already ended.
func (e *Events) End(ctx context.Context, id, reason, description string) (bool, error) {
	var ended bool
	err := e.cfg.DB.Update(ctx, func(tx *store.Tx) error {
		s, err := tx.Subscription(id)
		if errors.Is(err, store.ErrSubscriptionNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ended, err = e.endTx(tx, s, reason, description, e.cfg.Now())
		return err
	})
	if err != nil {
		return false, err
	}
	if ended {
		e.notify()
	}
	return ended, nil
}

// EndRegistrationTx ends, in the caller's transaction, the subscriptions
// that name device registration registrationID: in r2.2 a subscription
// serves one registration and cannot outlive it. Each ends
// NETWORK_TERMINATED (the server ended it; the spec has no closer reason)
// with its subscription-ended event; the caller calls Notify once the
// transaction has committed.
func (e *Events) EndRegistrationTx(tx *store.Tx, registrationID string) (int, error) {
	subs, err := tx.RegistrationSubscriptions(registrationID)
	if err != nil {
		return 0, err
	}
	now, n := e.cfg.Now(), 0
	for _, s := range subs {
		ok, err := e.endTx(tx, s, ReasonNetworkTerminated, "The device registration it served has ended", now)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// Terminate ends, with their subscription-ended events, the open
// subscriptions of number, or of every subscriber when number is "": the
// operator stops the service (NETWORK_TERMINATED, "API server stopped
// sending notification"). A restart of callpath is not such an end:
// subscriptions outlive it. It returns how many it ended.
func (e *Events) Terminate(ctx context.Context, number, description string) (int, error) {
	return e.endInBatches(ctx, e.cfg.Now(),
		func(limit int) ([]store.Subscription, error) { return e.cfg.DB.OpenSubscriptions(ctx, number, limit) },
		func(store.Subscription) (string, string) { return ReasonNetworkTerminated, description })
}

// Sweep ends the subscriptions that have expired by now (reason
// SUBSCRIPTION_EXPIRED) or whose sink token expires within TokenLead
// (ACCESS_TOKEN_EXPIRED), each with its subscription-ended event in the
// same transaction, and purges ended subscriptions older than Retention.
// It returns how many it ended.
func (e *Events) Sweep(ctx context.Context, now time.Time) (int, error) {
	ended, err := e.endInBatches(ctx, now,
		func(limit int) ([]store.Subscription, error) {
			return e.cfg.DB.DueSubscriptions(ctx, now, now.Add(e.cfg.TokenLead), limit)
		},
		func(s store.Subscription) (string, string) {
			if s.ExpiresAt.After(now) {
				return ReasonAccessTokenExpired, "Sink access token expires"
			}
			return ReasonSubscriptionExpired, "Subscription expired"
		})
	if err != nil {
		return ended, err
	}
	if _, err := e.cfg.DB.PurgeSubscriptions(ctx, now.Add(-e.cfg.Retention)); err != nil {
		return ended, err
	}
	return ended, nil
}

// endInBatches ends, at now, what next lists, a batch per transaction,
// each with its subscription-ended event for the reason why gives, until
// next lists less than a batch. It returns how many it ended.
func (e *Events) endInBatches(ctx context.Context, now time.Time, next func(limit int) ([]store.Subscription, error),
	why func(store.Subscription) (reason, description string)) (int, error) {
	const batch = 200
	ended := 0
	for {
		subs, err := next(batch)
		if err != nil || len(subs) == 0 {
			return ended, err
		}
		n := 0
		err = e.cfg.DB.Update(ctx, func(tx *store.Tx) error {
			for _, s := range subs {
				reason, desc := why(s)
				ok, err := e.endTx(tx, s, reason, desc, now)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return ended, err
		}
		ended += n
		if n > 0 {
			e.notify()
		}
		if len(subs) < batch {
			return ended, nil
		}
	}
}

// Event is something that happened to a subscriber, to be published to
// the subscriptions that asked for it.
type Event struct {
	PhoneNumber string // the subscriber (E.164)
	Type        string // one of the subscribable types
	// RegistrationID and SessionID narrow the recipients: when set, a
	// subscription whose subscriptionDetail names another registration or
	// media session does not get the event.
	RegistrationID string
	SessionID      string
	// Data is the event's data (a JSON object); subscriptionId is added
	// per subscription.
	Data any
}

// Publish enqueues ev, in one transaction, to every ACTIVE subscription of
// ev.PhoneNumber that asked for ev.Type and matches it. Each event counts
// toward the subscription's subscriptionMaxEvents; the one that reaches it
// is followed by subscription-ended (MAX_EVENTS_REACHED). It returns how
// many subscriptions got the event.
func (e *Events) Publish(ctx context.Context, ev Event) (int, error) {
	sent := 0
	err := e.cfg.DB.Update(ctx, func(tx *store.Tx) error {
		var err error
		sent, err = e.PublishTx(tx, ev)
		return err
	})
	if err != nil {
		return 0, err
	}
	if sent > 0 {
		e.notify()
	}
	return sent, nil
}

// PublishTx is Publish inside a caller's transaction, for a state change
// and its event that must commit together; the caller calls Notify once
// the transaction has committed.
func (e *Events) PublishTx(tx *store.Tx, ev Event) (int, error) {
	now := e.cfg.Now()
	sent := 0
	subs, err := tx.ActiveSubscriptions(ev.PhoneNumber, ev.Type, now)
	if err != nil {
		return 0, err
	}
	for _, s := range subs {
		if ev.RegistrationID != "" && s.RegistrationID != "" && s.RegistrationID != ev.RegistrationID ||
			ev.SessionID != "" && s.SessionID != "" && s.SessionID != ev.SessionID {
			continue
		}
		if err := e.sendTx(tx, s, ev.Type, ev.Data, now); errors.Is(err, errNotCounted) {
			continue
		} else if err != nil {
			return 0, err
		}
		sent++
	}
	return sent, nil
}

// errNotCounted: the subscription takes no more events (not active, or at
// its maximum already).
var errNotCounted = errors.New("subscription takes no more events")

// sendTx enqueues one event of type typ with data to subscription s,
// counting it toward subscriptionMaxEvents; the event that reaches the
// maximum is followed by subscription-ended (MAX_EVENTS_REACHED).
func (e *Events) sendTx(tx *store.Tx, s store.Subscription, typ string, data any, now time.Time) error {
	n, ok, err := tx.CountSubscriptionEvent(s.ID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotCounted
	}
	withID, err := withSubscriptionID(data, s.ID)
	if err != nil {
		return fmt.Errorf("event data: %w", err)
	}
	oe, err := outboxEvent(e.cfg.Source, s, typ, withID, now)
	if err != nil {
		return err
	}
	if err := tx.Enqueue(oe); err != nil {
		return err
	}
	if s.MaxEvents > 0 && n >= s.MaxEvents {
		if _, err := e.endTx(tx, s, ReasonMaxEventsReached, "Maximum number of events reached", now); err != nil {
			return err
		}
	}
	return nil
}

// Notify wakes the deliverer (after a PublishTx transaction committed).
func (e *Events) Notify() { e.notify() }
