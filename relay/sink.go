package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/auth"
	"callpath/store"
)

// serveSink takes one CloudEvent for a binding: 401 without the binding's
// sink token, 410 when the binding is gone, 4xx with a message for a
// malformed event, 429 when the queue is full, 204 once the event is
// committed to the queue. Then it is offered to the binding's socket.
func (r *Relay) serveSink(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	code := r.sink(w, req, start)
	r.m.SinkRequest(code)
}

func (r *Relay) sink(w http.ResponseWriter, req *http.Request, start time.Time) int {
	bindingID := req.PathValue("binding")
	fail := func(e *SinkError) int {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		writeProblem(w, e)
		return e.Status
	}
	tok, ok := auth.BearerToken(req.Header.Get("Authorization"))
	if !ok {
		return fail(&SinkError{http.StatusUnauthorized, "UNAUTHENTICATED", "no bearer token: send the sink credential the relay gave the app"})
	}
	// The request's context bounds the store calls: the sender's timeout
	// ends them (the store's own busy timeout bounds them too).
	ctx := req.Context()
	hash := hashToken(tok)
	if !r.tokens.valid(hash, bindingID, start) {
		exp, err := r.cfg.Store.CheckRelaySinkToken(ctx, bindingID, hash, start)
		if e := sinkAuthError(err); e != nil {
			if e.Status == http.StatusServiceUnavailable {
				r.log.WithError(err).Error("checking a sink token failed")
				w.Header().Set("Retry-After", "1")
			}
			return fail(e)
		}
		r.tokens.add(hash, bindingID, exp)
	}

	buf := r.bodies.Get().(*bytes.Buffer)
	defer r.putBody(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, r.cfg.MaxEventBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fail(&SinkError{http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE",
				"the event is larger than " + strconv.FormatInt(r.cfg.MaxEventBytes, 10) + " bytes (relay.max_event_bytes)"})
		}
		return fail(badEvent("reading the body: %v", err))
	}
	ev, err := ParseSinkEvent(req.Header, buf.Bytes())
	if err != nil {
		var se *SinkError
		if errors.As(err, &se) {
			return fail(se)
		}
		return fail(badEvent("%v", err))
	}

	// The binding's lock makes commit order and offer order the same.
	lock := r.hub.postLock(bindingID)
	lock.Lock()
	res, err := r.cfg.Store.AppendRelayEvent(ctx, store.RelayEvent{BindingID: bindingID, EventID: ev.ID, Body: ev.Body, CreatedAt: start},
		store.RelayQueueLimits{MaxEvents: r.cfg.Queue.MaxEvents, DropOldest: r.cfg.Queue.DropOldest})
	if err == nil && !res.Duplicate {
		if s := r.hub.session(bindingID); s != nil {
			frame := appendEventFrame(make([]byte, 0, eventFrameLen(ev.ID, ev.Body)), res.Seq, ev.ID, ev.Body)
			s.offer(res.Seq, ev.ID, frame, start)
		}
	}
	lock.Unlock()
	switch {
	case errors.Is(err, store.ErrRelayQueueFull):
		w.Header().Set("Retry-After", strconv.Itoa(queueFullRetrySeconds))
		return fail(&SinkError{http.StatusTooManyRequests, "QUEUE_FULL",
			"the binding's queue holds " + strconv.Itoa(r.cfg.Queue.MaxEvents) + " events its app has not taken; retry later"})
	case errors.Is(err, store.ErrRelayBindingNotFound):
		return fail(&SinkError{http.StatusGone, "GONE", "no such binding: the app unbound it or it expired"})
	case err != nil:
		r.log.WithError(err).WithField("binding_id", bindingID).Error("queueing an event failed")
		w.Header().Set("Retry-After", "1")
		return fail(&SinkError{http.StatusServiceUnavailable, "UNAVAILABLE", "the event could not be queued; retry"})
	}
	if res.Duplicate {
		r.log.WithFields(logrus.Fields{"binding_id": bindingID, "event_id": ev.ID}).Debug("event already queued")
	} else {
		r.m.Queued()
	}
	if res.Dropped > 0 {
		r.m.Expired("queue_full", res.Dropped)
		if s := r.hub.session(bindingID); s != nil {
			s.tellExpired(res.Dropped)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// sinkAuthError is the answer to a sink token the store did not accept
// (nil: accepted).
func sinkAuthError(err error) *SinkError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrRelayBindingNotFound):
		return &SinkError{http.StatusGone, "GONE", "no such binding: the app unbound it or it expired"}
	case errors.Is(err, store.ErrRelayTokenInvalid):
		return &SinkError{http.StatusUnauthorized, "UNAUTHENTICATED", "the sink credential is not this binding's, or it expired"}
	default:
		return &SinkError{http.StatusServiceUnavailable, "UNAVAILABLE", "the relay's store is unavailable; retry"}
	}
}

// queueFullRetrySeconds is the Retry-After of a full queue: the app has
// to connect and take events first, which is not a matter of milliseconds.
const queueFullRetrySeconds = 30

// putBody returns a request body buffer to the pool (Relay.bodies): the
// event has been copied into the store and into its frame by then.
func (r *Relay) putBody(b *bytes.Buffer) {
	if b.Cap() <= 256<<10 {
		r.bodies.Put(b)
	}
}

// writeProblem answers e as JSON {status, code, message}, the shape of
// callpath's CAMARA errors.
func writeProblem(w http.ResponseWriter, e *SinkError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{e.Status, e.Code, e.Message})
}

// codeFor names a status for the errors the WebSocket upgrader reports.
func codeFor(status int) string {
	switch status {
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusMethodNotAllowed:
		return "METHOD_NOT_ALLOWED"
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	default:
		return "INTERNAL"
	}
}
