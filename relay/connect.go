package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"

	"callpath/store"
)

// maxDeviceIDLen bounds the device id an app gives.
const maxDeviceIDLen = 128

// serveConnect is the WebSocket handshake: check the origin and the token,
// admit the socket, attach the binding (minting a sink token), upgrade,
// send the hello and hand the socket to a session.
func (r *Relay) serveConnect(w http.ResponseWriter, req *http.Request) {
	refuse := func(result string, e *SinkError) {
		r.m.ConnectAttempt(result)
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		writeProblem(w, e)
	}
	if r.closing.Load() {
		w.Header().Set("Retry-After", "5")
		refuse(resultUnavailable, &SinkError{http.StatusServiceUnavailable, "UNAVAILABLE", "the relay is shutting down; connect again"})
		return
	}
	if !websocket.IsWebSocketUpgrade(req) {
		refuse(resultBadRequest, &SinkError{http.StatusBadRequest, "INVALID_ARGUMENT", "connect with a WebSocket (Upgrade: websocket)"})
		return
	}
	if !r.originAllowed(req) {
		refuse(resultForbidden, &SinkError{http.StatusForbidden, "PERMISSION_DENIED", "origin not allowed: see relay.allowed_origins"})
		return
	}
	id, e := r.identify(req)
	if e != nil {
		result := resultUnauthenticated
		switch e.Status {
		case http.StatusBadRequest:
			result = resultBadRequest
		case http.StatusForbidden:
			result = resultForbidden
		}
		refuse(result, e)
		return
	}
	after, err := afterParam(req)
	if err != nil {
		refuse(resultBadRequest, badEvent("%v", err))
		return
	}
	if !r.hub.admit() {
		// Refused before the upgrade: an admitted socket costs a file
		// descriptor, and the process has a limited number.
		w.Header().Set("Retry-After", "30")
		refuse(resultOverCapacity, &SinkError{http.StatusServiceUnavailable, "UNAVAILABLE", "the relay holds as many sockets as it may; connect again later"})
		return
	}
	admitted := true
	defer func() {
		if admitted {
			r.hub.release()
		}
	}()

	ctx, cancel := context.WithTimeout(req.Context(), storeTimeout)
	defer cancel()
	hello, binding, created, e := r.attach(ctx, req, id)
	if e != nil {
		result := resultUnavailable
		switch e.Status {
		case http.StatusGone:
			result = resultGone
		case http.StatusTooManyRequests:
			result = resultQuota
		}
		refuse(result, e)
		return
	}
	// The new socket starts from the queue as the store has it: the
	// acknowledgements made on an earlier socket are written first, and
	// after acknowledges everything up to it.
	if err := r.acks.flush(ctx); err != nil {
		r.log.WithError(err).Warn("writing acknowledgements before a reconnect failed; some events may come twice")
	}
	if after > 0 {
		if _, err := r.cfg.Store.AckRelayEvents(ctx, []store.RelayAck{{BindingID: binding.ID, UpToSeq: after}}); err != nil {
			refuse(resultUnavailable, &SinkError{http.StatusServiceUnavailable, "UNAVAILABLE", "the relay's store is unavailable; connect again"})
			return
		}
	}

	conn, err := r.upgrader.Upgrade(w, req, nil)
	if err != nil {
		r.m.ConnectAttempt(resultBadRequest) // Upgrade has answered
		return
	}
	// The session takes the binding before the hello goes out, so that a
	// connection whose hello has arrived is never taken over by one that
	// began earlier. Nothing is written to it before start.
	// A binding made by this connect has an empty queue (its sink is in the
	// hello, not yet sent): its session need not read the store first.
	s := newSession(r, conn, binding.ID, binding.DeviceID, binding.ExpiredUnreported, !created)
	if old := r.hub.attach(s); old != nil {
		old.close(CloseReplaced, "another connection took over the binding", reasonReplaced)
	}
	helloFrame, _ := json.Marshal(hello)
	_ = conn.SetWriteDeadline(time.Now().Add(r.cfg.WriteTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, helloFrame); err != nil {
		s.close(0, "", reasonWriteFailed)
		r.hub.detach(s)
		r.m.ConnectAttempt(resultClosedEarly)
		return
	}
	// Under the lifecycle lock: either Shutdown has not begun (and will
	// close this socket and wait for its goroutines), or it has and the
	// socket is closed here without starting them.
	r.lifecycle.Lock()
	if r.closing.Load() {
		r.lifecycle.Unlock()
		s.close(websocket.CloseGoingAway, "relay shutting down", reasonShutdown)
		r.hub.detach(s)
		r.m.ConnectAttempt(resultUnavailable)
		return
	}
	admitted = false // the session releases the slot
	r.m.ConnectAttempt(resultAccepted)
	r.m.ConnectionOpened()
	s.start()
	r.lifecycle.Unlock()
	r.log.WithFields(logrus.Fields{"binding_id": binding.ID, "device_id": binding.DeviceID}).Debug("relay socket open")
}

// resultClosedEarly: the socket closed before its hello was written.
const resultClosedEarly = "closed_early"

// identity is who connects: a binding (relay-issued token) or an owner and
// a device id.
type identity struct {
	bindingID       string
	owner, deviceID string
}

// identify checks the token: a relay-issued token names its binding; an
// access token its owner, with the deviceId query parameter.
func (r *Relay) identify(req *http.Request) (identity, *SinkError) {
	unauth := func(msg string) (identity, *SinkError) {
		return identity{}, &SinkError{http.StatusUnauthorized, "UNAUTHENTICATED", msg}
	}
	tok, err := bearerFrom(req.Header, websocket.Subprotocols(req))
	if err != nil {
		return unauth(err.Error())
	}
	if r.cfg.BindingTokens != nil {
		if id, ok := r.cfg.BindingTokens.binding(req.Context(), tok); ok {
			return identity{bindingID: id}, nil
		}
	}
	claims, err := r.cfg.Verifier.Verify(req.Context(), tok)
	if err != nil {
		return unauth("the token is missing, invalid or expired")
	}
	if r.cfg.RequiredScope != "" && !claims.HasScope(r.cfg.RequiredScope) {
		return identity{}, &SinkError{http.StatusForbidden, "PERMISSION_DENIED", "the token lacks scope " + r.cfg.RequiredScope}
	}
	device := req.URL.Query().Get("deviceId")
	if !validDeviceID(device) {
		return identity{}, badEvent("deviceId: want 1 to %d characters of A-Z a-z 0-9 . _ : -", maxDeviceIDLen)
	}
	owner := claims.PhoneNumber
	if owner == "" {
		owner = "sub:" + claims.Subject
	}
	return identity{owner: owner, deviceID: device}, nil
}

// attach finds or creates the binding with a new sink token and builds the
// hello.
func (r *Relay) attach(ctx context.Context, req *http.Request, id identity) (Hello, store.RelayBinding, bool, *SinkError) {
	unavailable := &SinkError{http.StatusServiceUnavailable, "UNAVAILABLE", "the relay's store is unavailable; connect again"}
	sinkToken, hash, err := newSinkToken()
	if err != nil {
		return Hello{}, store.RelayBinding{}, false, unavailable
	}
	now := time.Now()
	sinkExp := now.Add(r.cfg.SinkTokenTTL).Truncate(time.Second)
	b, done, err := r.cfg.Store.AttachRelayBinding(ctx, store.RelayAttach{
		BindingID: id.bindingID, Owner: id.owner, DeviceID: id.deviceID, NewID: uuid.NewString(),
		MaxPerOwner: r.cfg.MaxBindingsPerOwner, TokenHash: hash, TokenExpires: sinkExp,
		KeepTokens: r.cfg.SinkTokensPerBinding, Now: now,
	})
	switch {
	case errors.Is(err, store.ErrRelayBindingNotFound):
		return Hello{}, b, false, &SinkError{http.StatusGone, "GONE", "the binding of this relay token is gone: connect with an access token and a deviceId"}
	case errors.Is(err, store.ErrRelayBindingLimit):
		return Hello{}, b, false, &SinkError{http.StatusTooManyRequests, "QUOTA_EXCEEDED", "this owner holds the most bindings allowed (relay.max_bindings_per_owner)"}
	case err != nil:
		r.log.WithError(err).Error("attaching a relay binding failed")
		return Hello{}, b, false, unavailable
	}
	r.tokens.remove(done.Trimmed)
	r.tokens.add(hash, b.ID, sinkExp)
	if done.Created {
		r.log.WithFields(logrus.Fields{"binding_id": b.ID, "device_id": b.DeviceID}).Info("relay binding created")
	}
	h := Hello{Type: TypeHello, Version: ProtocolVersion, BindingID: b.ID, DeviceID: b.DeviceID,
		Sink: r.sinkURL(req, b.ID),
		SinkCredential: SinkCredential{CredentialType: "ACCESSTOKEN", AccessToken: sinkToken,
			AccessTokenExpiresUtc: sinkExp.UTC().Format(time.RFC3339), AccessTokenType: "bearer"},
		AckWindow: r.cfg.AckWindow, MaxMessageBytes: r.cfg.MaxMessageBytes}
	if r.cfg.BindingTokens != nil {
		tok, exp, err := r.cfg.BindingTokens.mint(b.ID)
		if err != nil {
			r.log.WithError(err).Error("minting a relay token failed")
			return Hello{}, b, false, unavailable
		}
		h.RelayToken, h.RelayTokenExpiresUtc = tok, exp.UTC().Format(time.RFC3339)
	}
	return h, b, done.Created, nil
}

func afterParam(req *http.Request) (int64, error) {
	v := req.URL.Query().Get("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("after: want the seq of the last event handled (a whole number)")
	}
	return n, nil
}

func validDeviceID(s string) bool {
	if s == "" || len(s) > maxDeviceIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

// unbind deletes the binding of s at the app's request and closes its
// socket: its sink answers 410 from now on.
func (r *Relay) unbind(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := r.cfg.Store.DeleteRelayBindings(ctx, []string{s.bindingID}); err != nil {
		s.logger().WithError(err).Error("deleting a binding failed")
		s.close(websocket.CloseInternalServerErr, "unbind failed", reasonInternal)
		return
	}
	s.logger().Info("relay binding deleted by its app")
	s.close(websocket.CloseNormalClosure, "binding deleted", reasonUnbind)
}
