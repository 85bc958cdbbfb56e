package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"

	"callpath/store"
)

// session is one open socket of a binding.
//
// Memory per socket is what bounds how many the relay holds, so a session
// has one goroutine of its own, the reader. Writing is done by a goroutine
// started when there is something to write (pump) that ends when there is
// nothing left; a socket that cannot take its writes holds up only its own
// pump, never another socket's, and only until the write deadline. Event
// frames are built once, by the sink request, and dropped once written.
//
// Flow control: at most AckWindow events are unacknowledged on a socket.
// Events beyond it, and the backlog of a new connection, are not held in
// memory: the session is "behind" and the pump reads them from the store
// as acknowledgements open the window.
type session struct {
	r         *Relay
	conn      *websocket.Conn
	bindingID string
	deviceID  string
	pingTimer *time.Timer

	mu       sync.Mutex
	frames   []frame     // to write, in seq order
	inflight []sentEvent // queued or written, not acknowledged; ascending seq
	lastSeq  int64       // highest seq in inflight (or acknowledged)
	// behind: the store may hold events after lastSeq that frames does
	// not; offeredMax is the highest seq offered meanwhile (the pump is
	// caught up once it has read past it and found no more).
	behind     bool
	offeredMax int64
	pingDue    bool
	expired    int // dropped events to tell the app of
	pongs      int // answers owed to the app's pings
	pumping    bool
	closed     bool
	reason     string // why the relay closed it (metrics), set once
}

type frame struct {
	data  []byte
	since time.Time // the sink request (live) or the queueing (backlog)
	path  string
}

type sentEvent struct {
	seq int64
	id  string
}

// newSession is a binding's new socket; behind says its queue may hold
// events (false only for a binding this connect created).
func newSession(r *Relay, conn *websocket.Conn, bindingID, deviceID string, expired int, behind bool) *session {
	return &session{r: r, conn: conn, bindingID: bindingID, deviceID: deviceID,
		// Until start, the session counts as pumping: offers only queue,
		// so nothing is written before the hello or read from the store
		// before the acknowledgements of the previous socket are flushed.
		pumping: true, behind: behind, expired: expired}
}

// start begins reading and writing, after the hello.
func (s *session) start() {
	s.mu.Lock()
	s.pingTimer = time.AfterFunc(s.r.cfg.PingInterval, s.pingTick)
	s.mu.Unlock()
	s.r.wg.Add(2)
	go s.readLoop()
	go s.pump()
}

// offer hands the session an event just committed to its queue (called in
// seq order for a binding: the sink holds the binding's lock).
func (s *session) offer(seq int64, id string, data []byte, accepted time.Time) {
	s.mu.Lock()
	if s.closed || seq <= s.lastSeq {
		s.mu.Unlock()
		return
	}
	if s.behind || len(s.inflight) >= s.r.cfg.AckWindow {
		s.behind = true
		s.offeredMax = max(s.offeredMax, seq)
	} else {
		s.frames = append(s.frames, frame{data: data, since: accepted, path: pathLive})
		s.inflight = append(s.inflight, sentEvent{seq: seq, id: id})
		s.lastSeq = seq
	}
	s.wakeLocked()
}

// tellExpired makes the session tell its app that n events were dropped.
func (s *session) tellExpired(n int) {
	s.mu.Lock()
	s.expired += n
	s.wakeLocked()
}

func (s *session) pingTick() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.pingDue = true
	s.wakeLocked()
	s.pingTimer.Reset(s.r.cfg.PingInterval)
}

// wakeLocked starts the pump if there is work and none runs, and unlocks.
func (s *session) wakeLocked() {
	start := !s.pumping && !s.closed && s.hasWorkLocked()
	if start {
		s.pumping = true
		s.r.wg.Add(1)
	}
	s.mu.Unlock()
	if start {
		go s.pump()
	}
}

func (s *session) hasWorkLocked() bool {
	return len(s.frames) > 0 || s.pingDue || s.expired > 0 || s.pongs > 0 ||
		s.behind && len(s.inflight) < s.r.cfg.AckWindow
}

// pump writes what there is to write, reading the backlog from the store
// as the window allows, and returns when nothing is left.
func (s *session) pump() {
	defer s.r.wg.Done()
	for {
		s.mu.Lock()
		if s.closed || !s.hasWorkLocked() {
			s.pumping = false
			s.mu.Unlock()
			return
		}
		frames := s.frames
		s.frames = nil
		ping, expired, pongs := s.pingDue, s.expired, s.pongs
		s.pingDue, s.expired, s.pongs = false, 0, 0
		room := s.r.cfg.AckWindow - len(s.inflight)
		fetch := s.behind && room > 0
		after := s.lastSeq
		s.mu.Unlock()

		if ping && !s.writeControl(websocket.PingMessage) {
			return
		}
		for range pongs {
			if !s.write(frame{data: pongFrame}) {
				return
			}
		}
		if expired > 0 {
			if !s.write(frame{data: expiredFrame(expired)}) {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			if err := s.r.cfg.Store.ReportedRelayExpired(ctx, s.bindingID, expired); err != nil {
				s.logger().WithError(err).Warn("recording that expired events were reported failed; the app may be told again")
			}
			cancel()
		}
		for _, f := range frames {
			if !s.write(f) {
				return
			}
		}
		if fetch {
			backlog, ok := s.fetch(after, room)
			if !ok {
				return
			}
			for _, f := range backlog {
				if !s.write(f) {
					return
				}
			}
		}
	}
}

// fetch reads up to room events after seq from the store and takes them
// in flight; when it finds fewer and nothing newer was offered meanwhile,
// the session has caught up.
func (s *session) fetch(after int64, room int) ([]frame, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	evs, err := s.r.cfg.Store.RelayEvents(ctx, s.bindingID, after, room)
	cancel()
	if err != nil {
		s.logger().WithError(err).Error("reading the binding's queue failed; closing the socket")
		s.close(websocket.CloseInternalServerErr, "queue unavailable", reasonInternal)
		return nil, false
	}
	out := make([]frame, 0, len(evs))
	s.mu.Lock()
	for _, e := range evs {
		if e.Seq <= s.lastSeq {
			continue // only the pump moves lastSeq while behind; defensive
		}
		out = append(out, frame{data: appendEventFrame(make([]byte, 0, eventFrameLen(e.EventID, e.Body)), e.Seq, e.EventID, e.Body),
			since: e.CreatedAt, path: pathBacklog})
		s.inflight = append(s.inflight, sentEvent{seq: e.Seq, id: e.EventID})
		s.lastSeq = e.Seq
	}
	if len(evs) < room && s.lastSeq >= s.offeredMax {
		s.behind = false
	}
	s.mu.Unlock()
	return out, true
}

// write sends one text frame within the write deadline; a socket that
// cannot take it is closed.
func (s *session) write(f frame) bool {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.r.cfg.WriteTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, f.data); err != nil {
		s.close(0, "", reasonWriteFailed)
		return false
	}
	if f.path != "" {
		s.r.m.Delivered(f.path, time.Since(f.since))
	}
	return true
}

func (s *session) writeControl(kind int) bool {
	if err := s.conn.WriteControl(kind, nil, time.Now().Add(s.r.cfg.WriteTimeout)); err != nil {
		s.close(0, "", reasonWriteFailed)
		return false
	}
	return true
}

// ack applies an acknowledgement: it frees the window and queues the
// deletion (ackBatcher). A cumulative ack never reaches past what this
// socket was sent.
func (s *session) ack(m ClientMessage) {
	s.mu.Lock()
	a := store.RelayAck{BindingID: s.bindingID}
	if m.Seq > 0 {
		a.UpToSeq = min(m.Seq, s.lastSeq)
		i := 0
		for i < len(s.inflight) && s.inflight[i].seq <= a.UpToSeq {
			i++
		}
		s.inflight = s.inflight[:copy(s.inflight, s.inflight[i:])]
	} else {
		a.EventID = m.ID
		for i, e := range s.inflight {
			if e.id == m.ID {
				s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
				break
			}
		}
	}
	if len(s.inflight) == 0 {
		s.inflight = nil // an idle socket holds no window
	}
	s.wakeLocked()
	if a.UpToSeq > 0 || a.EventID != "" {
		s.r.acks.add(a)
	}
}

// pong owes the app an answer to its ping (a few at most: a client
// flooding pings gets fewer answers, not more memory).
func (s *session) pong() {
	s.mu.Lock()
	s.pongs = min(s.pongs+1, 4)
	s.wakeLocked()
}

// close closes the socket, with a close frame when code is not zero; the
// first reason given is the one counted.
func (s *session) close(code int, text, reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.reason = true, reason
	s.frames, s.inflight = nil, nil
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	s.mu.Unlock()
	if code != 0 {
		// Waits for a write in progress at most closeWait.
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeWait))
	}
	_ = s.conn.Close()
}

// closeWait bounds the close frame's write (a stuck socket is closed
// without it).
const closeWait = time.Second

// storeTimeout bounds a store operation of a session.
const storeTimeout = 5 * time.Second

// readLoop reads the app's messages until the socket ends, then lets go of
// the binding.
func (s *session) readLoop() {
	defer s.r.wg.Done()
	reason := s.read()
	s.close(0, "", reason) // a no-op when the relay closed it first
	s.mu.Lock()
	reason = s.reason
	s.mu.Unlock()
	s.r.hub.detach(s)
	s.r.hub.release()
	s.r.m.ConnectionClosed(reason)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if reason != reasonUnbind && reason != reasonBindingGone {
		// The binding's idle time counts from its last socket's end.
		if err := s.r.cfg.Store.TouchRelayBindings(ctx, []string{s.bindingID}, time.Now()); err != nil {
			s.logger().WithError(err).Warn("marking the binding seen failed")
		}
	}
	s.logger().WithField("reason", reason).Debug("relay socket closed")
}

// read returns why reading stopped.
func (s *session) read() string {
	c := s.conn
	c.SetReadLimit(s.r.cfg.MaxMessageBytes)
	// The app must send something (a pong at least) within this.
	idle := s.r.cfg.PingInterval + s.r.cfg.PongTimeout
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(idle)) })
	_ = c.SetReadDeadline(time.Now().Add(idle))
	for {
		kind, rd, err := c.NextReader()
		if err != nil {
			return readErrorReason(err)
		}
		// Messages are read into a pooled buffer: a socket holds none
		// between messages.
		buf := s.r.bodies.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(rd)
		m, perr := ParseClientMessage(buf.Bytes())
		s.r.putBody(buf)
		if err != nil {
			return readErrorReason(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(idle))
		if kind != websocket.TextMessage {
			s.close(websocket.CloseUnsupportedData, "binary frames are not part of the protocol", reasonProtocolError)
			return reasonProtocolError
		}
		if err := perr; err != nil {
			s.close(websocket.ClosePolicyViolation, closeText(err.Error()), reasonProtocolError)
			return reasonProtocolError
		}
		switch m.Type {
		case TypeAck:
			s.ack(m)
		case TypePing:
			s.pong()
		case TypeUnbind:
			s.r.unbind(s)
			return reasonUnbind
		}
	}
}

func readErrorReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return reasonTooBig // gorilla has sent 1009
	case errors.As(err, &ne) && ne.Timeout():
		return reasonDead
	default:
		return reasonClientClosed
	}
}

// closeText fits a close reason into a control frame (125 bytes, 2 for
// the code).
func closeText(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		cut--
	}
	return s[:cut]
}

func (s *session) logger() *logrus.Entry {
	return s.r.log.WithFields(logrus.Fields{"binding_id": s.bindingID, "device_id": s.deviceID})
}
