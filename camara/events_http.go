package camara

import (
	"net/http"
	"slices"
	"time"

	"callpath/devreg"
	"callpath/store"
)

// subscriptionRequest is SubscriptionRequest (r2.2).
type subscriptionRequest struct {
	Protocol       string          `json:"protocol"`
	Sink           string          `json:"sink"`
	SinkCredential *sinkCredential `json:"sinkCredential"`
	Types          []string        `json:"types"`
	Config         *eventsConfig   `json:"config"`
}

// sinkCredential is AccessTokenCredential; AccessTokenExpireUtc is the
// misspelt name the r2.2 examples use, accepted when the schema's is absent.
type sinkCredential struct {
	CredentialType        string `json:"credentialType"`
	AccessToken           string `json:"accessToken"`
	AccessTokenExpiresUtc string `json:"accessTokenExpiresUtc"`
	AccessTokenExpireUtc  string `json:"accessTokenExpireUtc"`
	AccessTokenType       string `json:"accessTokenType"`
}

// eventsConfig is Config (r2.2).
type eventsConfig struct {
	SubscriptionDetail     *subscriptionDetail `json:"subscriptionDetail"`
	SubscriptionExpireTime string              `json:"subscriptionExpireTime,omitempty"`
	SubscriptionMaxEvents  *int                `json:"subscriptionMaxEvents,omitempty"`
	InitialEvent           *bool               `json:"initialEvent,omitempty"`
}

// subscriptionDetail is WebrtcSubscriptionDetail (r2.2).
type subscriptionDetail struct {
	DeviceID       string `json:"deviceId,omitempty"`
	SessionID      string `json:"sessionId,omitempty"`
	RegistrationID string `json:"registrationId"`
}

// subscriptionResponse is Subscription (r2.2); sinkCredential is never
// echoed.
type subscriptionResponse struct {
	ID        string       `json:"id"`
	Protocol  string       `json:"protocol"`
	Sink      string       `json:"sink"`
	Types     []string     `json:"types"`
	Config    eventsConfig `json:"config"`
	StartsAt  string       `json:"startsAt,omitempty"`
	ExpiresAt string       `json:"expiresAt,omitempty"`
	Status    string       `json:"status"`
}

// maxIDLength bounds the identifiers a client sends (ids, registration and
// session ids).
const maxIDLength = 256

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toResponse(s store.Subscription) subscriptionResponse {
	r := subscriptionResponse{ID: s.ID, Protocol: "HTTP", Sink: s.Sink, Types: s.Types, Status: s.Status,
		StartsAt: rfc3339(s.StartsAt), ExpiresAt: rfc3339(s.ExpiresAt),
		Config: eventsConfig{SubscriptionDetail: &subscriptionDetail{DeviceID: s.DeviceID, SessionID: s.SessionID,
			RegistrationID: s.RegistrationID}, InitialEvent: s.InitialEvent}}
	if !s.RequestedExpireTime.IsZero() {
		r.Config.SubscriptionExpireTime = rfc3339(s.RequestedExpireTime)
	}
	if s.MaxEvents > 0 {
		m := s.MaxEvents
		r.Config.SubscriptionMaxEvents = &m
	}
	return r
}

// Handler serves the webrtc-events API under the base path, x-correlator
// and CAMARA errors included.
func (e *Events) Handler() http.Handler {
	rt := NewRouter(e.cfg.BasePath)
	v := e.cfg.Verifier
	createScopes := make([]string, len(subscribableTypes))
	for i, t := range subscribableTypes {
		createScopes[i] = CreateScope(t)
	}
	rt.Handle(http.MethodPost, "/subscriptions", Authenticate(v,
		Access{AnyScope: createScopes, Subscriber: true, NoSubscriber: ErrMissingIdentifier}, http.HandlerFunc(e.create)))
	rt.Handle(http.MethodGet, "/subscriptions", Authenticate(v,
		Access{AnyScope: []string{eventsScopeRead}, Subscriber: true}, http.HandlerFunc(e.list)))
	rt.Handle(http.MethodGet, "/subscriptions/{subscriptionId}", Authenticate(v,
		Access{AnyScope: []string{eventsScopeRead}, Subscriber: true}, http.HandlerFunc(e.get)))
	rt.Handle(http.MethodDelete, "/subscriptions/{subscriptionId}", Authenticate(v,
		Access{AnyScope: []string{eventsScopeDelete}, Subscriber: true}, http.HandlerFunc(e.delete)))
	if e.cfg.EnableUpdate {
		rt.Handle(http.MethodPut, "/subscriptions/{subscriptionId}", Authenticate(v,
			Access{AnyScope: []string{eventsScopeUpdate}, Subscriber: true}, http.HandlerFunc(e.update)))
	}
	return Correlate(rt)
}

// parseCreate checks a create request against the r2.2 schema and the
// server's policy, returning the subscription to store.
func (e *Events) parseCreate(req subscriptionRequest, p Principal, now time.Time) (store.Subscription, error) {
	bad := ErrInvalidArgument.WithMessage
	switch {
	case req.Protocol == "":
		return store.Subscription{}, bad("protocol is required.")
	case req.Protocol != "HTTP":
		return store.Subscription{}, &Error{http.StatusBadRequest, "INVALID_PROTOCOL", "Only HTTP is supported"}
	case req.Sink == "":
		return store.Subscription{}, bad("sink is required.")
	case len(req.Types) == 0:
		return store.Subscription{}, bad("types must name one event type.")
	case len(req.Types) > 1:
		return store.Subscription{}, bad("types allows one event type per subscription.")
	case !slices.Contains(subscribableTypes, req.Types[0]):
		return store.Subscription{}, bad("Unsupported event type %q.", req.Types[0])
	case req.Config == nil || req.Config.SubscriptionDetail == nil:
		return store.Subscription{}, bad("config.subscriptionDetail is required.")
	}
	d := req.Config.SubscriptionDetail
	switch {
	case d.RegistrationID == "" || len(d.RegistrationID) > maxIDLength:
		return store.Subscription{}, bad("config.subscriptionDetail.registrationId is required.")
	case d.DeviceID != "" && !devreg.ValidDeviceID(d.DeviceID):
		return store.Subscription{}, bad("config.subscriptionDetail.deviceId must be a UUID.")
	case len(d.SessionID) > maxIDLength:
		return store.Subscription{}, bad("config.subscriptionDetail.sessionId is too long.")
	case req.Types[0] == TypeSessionStatus && d.SessionID == "":
		return store.Subscription{}, bad("session-status subscriptions need config.subscriptionDetail.sessionId.")
	}
	if err := e.cfg.ValidateSink(req.Sink); err != nil {
		return store.Subscription{}, &Error{http.StatusBadRequest, "INVALID_SINK", "sink not valid for the specified protocol"}
	}
	var err error
	s := store.Subscription{ID: newID(), OwnerNumber: p.PhoneNumber, OwnerSubject: p.Subject, ClientID: p.ClientID,
		Types: req.Types, Sink: req.Sink, RegistrationID: d.RegistrationID, DeviceID: d.DeviceID, SessionID: d.SessionID,
		InitialEvent: req.Config.InitialEvent, Status: store.SubscriptionActive, StartsAt: now,
		ExpiresAt: now.Add(e.cfg.DefaultTTL)}
	if c := req.SinkCredential; c != nil {
		if s.SinkToken, s.SinkTokenExp, err = e.parseCredential(c, now); err != nil {
			return store.Subscription{}, err
		}
	}
	if m := req.Config.SubscriptionMaxEvents; m != nil {
		if *m < 1 {
			return store.Subscription{}, ErrOutOfRange.WithMessage("config.subscriptionMaxEvents must be at least 1.")
		}
		s.MaxEvents = *m
	}
	if x := req.Config.SubscriptionExpireTime; x != "" {
		if s.RequestedExpireTime, s.ExpiresAt, err = e.parseExpireTime(x, now); err != nil {
			return store.Subscription{}, err
		}
	}
	return s, nil
}

// parseCredential checks an AccessTokenCredential and returns its token
// and expiry.
func (e *Events) parseCredential(c *sinkCredential, now time.Time) (string, time.Time, error) {
	exp := c.AccessTokenExpiresUtc
	if exp == "" {
		exp = c.AccessTokenExpireUtc
	}
	switch {
	case c.CredentialType != "ACCESSTOKEN":
		return "", time.Time{}, &Error{http.StatusBadRequest, "INVALID_CREDENTIAL", "Only Access token is supported"}
	case c.AccessTokenType != "bearer":
		return "", time.Time{}, &Error{http.StatusBadRequest, "INVALID_TOKEN", "Only bearer token is supported"}
	case c.AccessToken == "" || exp == "":
		return "", time.Time{}, ErrInvalidArgument.WithMessage("sinkCredential needs accessToken and accessTokenExpiresUtc.")
	}
	t, err := time.Parse(time.RFC3339Nano, exp)
	if err != nil {
		return "", time.Time{}, ErrInvalidArgument.WithMessage("sinkCredential.accessTokenExpiresUtc must be an RFC 3339 date-time with a zone.")
	}
	if !t.After(now.Add(e.cfg.TokenLead)) {
		return "", time.Time{}, ErrOutOfRange.WithMessage("sinkCredential.accessTokenExpiresUtc is in the past or too close.")
	}
	return c.AccessToken, t.UTC(), nil
}

// parseExpireTime checks a requested subscriptionExpireTime and returns
// it with the granted expiry (capped at MaxTTL from now).
func (e *Events) parseExpireTime(x string, now time.Time) (requested, granted time.Time, err error) {
	t, err := time.Parse(time.RFC3339Nano, x)
	if err != nil {
		return time.Time{}, time.Time{}, ErrInvalidArgument.WithMessage("config.subscriptionExpireTime must be an RFC 3339 date-time with a zone.")
	}
	if !t.After(now) {
		return time.Time{}, time.Time{}, ErrOutOfRange.WithMessage("config.subscriptionExpireTime is in the past.")
	}
	requested, granted = t.UTC(), t.UTC()
	if limit := now.Add(e.cfg.MaxTTL); granted.After(limit) {
		granted = limit
	}
	return requested, granted, nil
}

func (e *Events) create(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	var req subscriptionRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	now := e.cfg.Now()
	s, err := e.parseCreate(req, p, now)
	if err != nil {
		writeError(w, err)
		return
	}
	if !p.HasScope(CreateScope(s.Types[0])) {
		writeError(w, ErrPermissionDenied)
		return
	}
	if e.cfg.CheckRegistration != nil {
		if err := e.cfg.CheckRegistration(r.Context(), p.PhoneNumber, s.RegistrationID); err != nil {
			writeError(w, err)
			return
		}
	}
	// initialEvent on a session-status subscription: the session's state,
	// read inside the transaction, after the subscription is in it. Read
	// before, a status change landing between the read and the insert
	// would reach neither: published before the subscription existed, and
	// newer than the state read. Inside, a change the read misses is
	// published after this transaction (the writer is one), to the
	// subscription; one the read sees may come twice, which the app tells
	// by sequenceNumber. The gateway holds no lock while it publishes, so
	// the read does not wait on the writer it runs in.
	wantInitial := s.InitialEvent != nil && *s.InitialEvent && s.HasType(TypeSessionStatus) && s.SessionID != "" &&
		e.cfg.CurrentSession != nil
	sentInitial := false
	err = e.cfg.DB.Update(r.Context(), func(tx *store.Tx) error {
		sentInitial = false
		n, err := tx.CountActiveSubscriptions(p.PhoneNumber, now)
		if err != nil {
			return err
		}
		if n >= e.cfg.MaxPerSubscriber {
			return ErrQuotaExceeded.WithMessage("At most %d active subscriptions per subscriber.", e.cfg.MaxPerSubscriber)
		}
		if err := tx.PutSubscription(s); err != nil {
			return err
		}
		if !wantInitial {
			return nil
		}
		initial, ok := e.cfg.CurrentSession(r.Context(), p.PhoneNumber, s.SessionID)
		if !ok {
			return nil
		}
		sentInitial = true
		return e.sendTx(tx, s, TypeSessionStatus, initial, now)
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if sentInitial {
		e.notify()
	}
	writeJSON(w, http.StatusCreated, toResponse(s))
}

func (e *Events) list(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	subs, err := e.cfg.DB.SubscriptionsByOwner(r.Context(), p.PhoneNumber)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]subscriptionResponse, 0, len(subs))
	for _, s := range subs {
		out = append(out, toResponse(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func subscriptionID(r *http.Request) (string, error) {
	id := r.PathValue("subscriptionId")
	if id == "" || len(id) > maxIDLength {
		return "", ErrInvalidArgument.WithMessage("Expected property is missing: subscriptionId")
	}
	return id, nil
}

func (e *Events) get(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id, err := subscriptionID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s, err := e.owned(r.Context(), p.PhoneNumber, id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toResponse(s))
}

// delete ends an active subscription of the caller (204) with its
// subscription-ended event (SUBSCRIPTION_DELETED) in the same transaction.
// An already ended one is not found: there is nothing left to delete.
func (e *Events) delete(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id, err := subscriptionID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	now := e.cfg.Now()
	err = e.cfg.DB.Update(r.Context(), func(tx *store.Tx) error {
		s, err := tx.Subscription(id)
		if err != nil {
			return err
		}
		if err := checkOwner(s, p.PhoneNumber); err != nil {
			return err
		}
		ok, err := e.endTx(tx, s, ReasonSubscriptionDeleted, "Subscription deleted by the requester", now)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	e.notify()
	w.WriteHeader(http.StatusNoContent)
}

// subscriptionUpdate is main's SubscriptionUpdateRequest.
type subscriptionUpdate struct {
	SinkCredential *sinkCredential `json:"sinkCredential"`
	Config         *struct {
		SubscriptionExpireTime string              `json:"subscriptionExpireTime"`
		SubscriptionDetail     *subscriptionDetail `json:"subscriptionDetail"`
	} `json:"config"`
}

// update is main's PUT /subscriptions/{id} (opt-in, EnableUpdate): it
// replaces the sink credential and/or the expiry of an active subscription
// of the caller and answers 200 with the subscription. A subscriptionDetail
// in the body is accepted only when equal to the stored one (notes §8.8).
func (e *Events) update(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id, err := subscriptionID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req subscriptionUpdate
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	now := e.cfg.Now()
	var u store.SubscriptionUpdate
	if req.SinkCredential != nil {
		if u.SinkToken, u.SinkTokenExp, err = e.parseCredential(req.SinkCredential, now); err != nil {
			writeError(w, err)
			return
		}
	}
	if req.Config != nil && req.Config.SubscriptionExpireTime != "" {
		if u.RequestedExpireTime, u.ExpiresAt, err = e.parseExpireTime(req.Config.SubscriptionExpireTime, now); err != nil {
			writeError(w, err)
			return
		}
	}
	if u.SinkToken == "" && u.ExpiresAt.IsZero() {
		writeError(w, ErrInvalidArgument.WithMessage("Nothing to update: give sinkCredential and/or config.subscriptionExpireTime."))
		return
	}
	var out store.Subscription
	err = e.cfg.DB.Update(r.Context(), func(tx *store.Tx) error {
		s, err := tx.Subscription(id)
		if err != nil {
			return err
		}
		if err := checkOwner(s, p.PhoneNumber); err != nil {
			return err
		}
		if req.Config != nil && req.Config.SubscriptionDetail != nil {
			d := req.Config.SubscriptionDetail
			if d.RegistrationID != s.RegistrationID || d.DeviceID != s.DeviceID || d.SessionID != s.SessionID {
				return ErrInvalidArgument.WithMessage("config.subscriptionDetail cannot be changed.")
			}
		}
		ok, err := tx.UpdateSubscription(id, u)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		out, err = tx.Subscription(id)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toResponse(out))
}
