package camara

import (
	"context"
	"errors"
	"net/http"

	"callpath/calls"
)

// The webrtc-call-handling scopes (r2.2).
const (
	callScopeCreate = "webrtc-call-handling:sessions:create"
	callScopeRead   = "webrtc-call-handling:sessions:read"
	callScopeWrite  = "webrtc-call-handling:sessions:write"
	callScopeDelete = "webrtc-call-handling:sessions:delete"
)

// MediaSessions runs the calls behind the API (the WebRTC gateway).
type MediaSessions interface {
	// Create starts an outgoing call of the subscriber's device.
	Create(ctx context.Context, number, registrationID string, s calls.Session) (calls.Session, error)
	Get(ctx context.Context, number, id string) (calls.Session, error)
	Update(ctx context.Context, number, id string, c calls.Change) (calls.Session, error)
	// Delete cancels, declines or hangs up, as the session's state asks.
	Delete(ctx context.Context, number, id string) error
}

// CallHandling serves webrtc-call-handling r2.2 (base
// /webrtc-call-handling/v0.3).
type CallHandling struct {
	BasePath string // with the version, e.g. "/webrtc-call-handling/v0.3"
	Verifier TokenVerifier
	Sessions MediaSessions
}

// sdpDescriptor is WrtcSDPDescriptor.
type sdpDescriptor struct {
	SDP string `json:"sdp"`
}

// MediaSession is MediaSessionInformation: the API's one schema for
// requests, responses and the session-invitation and session-status
// events' data.
type MediaSession struct {
	OriginatorAddress string         `json:"originatorAddress,omitempty"`
	OriginatorName    string         `json:"originatorName,omitempty"`
	ReceiverAddress   string         `json:"receiverAddress,omitempty"`
	ReceiverName      string         `json:"receiverName,omitempty"`
	Status            string         `json:"status,omitempty"`
	Offer             *sdpDescriptor `json:"offer,omitempty"`
	Answer            *sdpDescriptor `json:"answer,omitempty"`
	ClientCorrelator  string         `json:"clientCorrelator,omitempty"`
	MediaSessionID    string         `json:"mediaSessionId,omitempty"`
	Reason            string         `json:"reason,omitempty"`
	SequenceNumber    *int           `json:"sequenceNumber,omitempty"`
	// r2.2's request examples wrap a status update in this (the schema
	// does not); it is read and unwrapped, never written.
	ReceiverSessionStatus *MediaSession `json:"receiverSessionStatus,omitempty"`
}

// MediaSessionOf is the wire form of s.
func MediaSessionOf(s calls.Session) MediaSession {
	m := MediaSession{
		OriginatorAddress: string(s.Originator), OriginatorName: s.OriginatorName,
		ReceiverAddress: string(s.Receiver), ReceiverName: s.ReceiverName,
		Status: string(s.Status), ClientCorrelator: s.ClientCorrelator, MediaSessionID: s.ID, Reason: s.Reason,
	}
	if s.Offer != "" {
		m.Offer = &sdpDescriptor{SDP: s.Offer}
	}
	if s.Answer != "" {
		m.Answer = &sdpDescriptor{SDP: s.Answer}
	}
	if s.Sequence > 0 {
		n := s.Sequence
		m.SequenceNumber = &n
	}
	return m
}

// Handler serves the API, x-correlator and CAMARA errors included. The
// status update is also served at PUT /sessions/{id}, the path the
// provider call flows use.
func (g *CallHandling) Handler() http.Handler {
	rt := NewRouter(g.BasePath)
	access := func(scope string) Access { return Access{AnyScope: []string{scope}, Subscriber: true} }
	rt.Handle(http.MethodPost, "/sessions", Authenticate(g.Verifier, access(callScopeCreate), http.HandlerFunc(g.create)))
	rt.Handle(http.MethodGet, "/sessions/{mediaSessionId}", Authenticate(g.Verifier, access(callScopeRead), http.HandlerFunc(g.get)))
	rt.Handle(http.MethodDelete, "/sessions/{mediaSessionId}", Authenticate(g.Verifier, access(callScopeDelete), http.HandlerFunc(g.delete)))
	update := Authenticate(g.Verifier, access(callScopeWrite), http.HandlerFunc(g.update))
	rt.Handle(http.MethodPut, "/sessions/{mediaSessionId}/status", update)
	rt.Handle(http.MethodPut, "/sessions/{mediaSessionId}", update)
	return Correlate(rt)
}

// callError maps the call service's errors once.
func callError(err error) error {
	switch {
	case errors.Is(err, calls.ErrNotFound):
		return ErrNotFound.WithMessage("No media session with this mediaSessionId for this subscriber.")
	case errors.Is(err, calls.ErrNotOriginator):
		return ErrInvalidTokenContext.WithMessage("originatorAddress is not consistent with the access token.")
	case errors.Is(err, calls.ErrUnknownRegistration):
		return ErrInvalidArgument.WithMessage("registrationId names no live registration of this subscriber.")
	case errors.Is(err, calls.ErrBadOffer):
		return ErrInvalidArgument.WithMessage("offer.sdp cannot be used: %s", errors.Unwrap(err))
	case errors.Is(err, calls.ErrBadAddress):
		return ErrInvalidArgument.WithMessage("Addresses must be tel:+<E.164> or sip:<user>@<domain>.")
	case errors.Is(err, calls.ErrAnswerRequired), errors.Is(err, calls.ErrStatusNotAllowed), errors.Is(err, calls.ErrSessionEnded):
		return ErrInvalidArgument.WithMessage("%s", capitalised(err.Error()))
	}
	return err
}

func capitalised(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:] + "."
}

func (g *CallHandling) create(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	regID := r.Header.Get("registrationId")
	if regID == "" || len(regID) > maxIDLength {
		writeError(w, ErrInvalidArgument.WithMessage("The registrationId header is required."))
		return
	}
	var req MediaSession
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case req.OriginatorAddress == "" || req.ReceiverAddress == "":
		writeError(w, ErrInvalidArgument.WithMessage("originatorAddress and receiverAddress are required."))
		return
	case req.Offer == nil || req.Offer.SDP == "":
		writeError(w, ErrInvalidArgument.WithMessage("offer.sdp is required: the gateway does not make offerless calls."))
		return
	case req.Status != "" || req.Answer != nil || req.MediaSessionID != "":
		writeError(w, ErrInvalidArgument.WithMessage("status, answer and mediaSessionId must not be sent on create."))
		return
	}
	from, err := calls.ParseAddress(req.OriginatorAddress)
	if err == nil {
		var to calls.Address
		if to, err = calls.ParseAddress(req.ReceiverAddress); err == nil {
			var s calls.Session
			s, err = g.Sessions.Create(r.Context(), p.PhoneNumber, regID, calls.Session{
				Originator: from, OriginatorName: req.OriginatorName, Receiver: to, ReceiverName: req.ReceiverName,
				Offer: req.Offer.SDP, ClientCorrelator: req.ClientCorrelator,
			})
			if err == nil {
				writeJSON(w, http.StatusCreated, MediaSessionOf(s))
				return
			}
		}
	}
	writeError(w, callError(err))
}

func (g *CallHandling) get(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	s, err := g.Sessions.Get(r.Context(), p.PhoneNumber, r.PathValue("mediaSessionId"))
	if err != nil {
		writeError(w, callError(err))
		return
	}
	writeJSON(w, http.StatusOK, MediaSessionOf(s))
}

func (g *CallHandling) delete(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	if err := g.Sessions.Delete(r.Context(), p.PhoneNumber, r.PathValue("mediaSessionId")); err != nil {
		writeError(w, callError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// update takes the flat MediaSessionInformation body the schema defines
// and, as the r2.2 examples send it, the same inside receiverSessionStatus.
func (g *CallHandling) update(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	var req MediaSession
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ReceiverSessionStatus != nil && req.Status == "" {
		req = *req.ReceiverSessionStatus
	}
	status, ok := calls.ParseStatus(req.Status)
	if !ok {
		writeError(w, ErrInvalidArgument.WithMessage("status must be one of the SessionStatus values."))
		return
	}
	c := calls.Change{Status: status}
	if req.Answer != nil {
		c.Answer = req.Answer.SDP
	}
	s, err := g.Sessions.Update(r.Context(), p.PhoneNumber, r.PathValue("mediaSessionId"), c)
	if err != nil {
		writeError(w, callError(err))
		return
	}
	writeJSON(w, http.StatusOK, MediaSessionOf(s))
}
