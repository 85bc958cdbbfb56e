package webrtcgw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/calls"
	"callpath/webrtc"
)

// Config is the gateway's configuration.
type Config struct {
	// Listen is the UDP address of the gateway's SIP user agent; it should
	// be a loopback address only the B2BUA reaches ("127.0.0.1:0").
	Listen string
	// Proxy is the B2BUA's SIP address (host:port, UDP): outgoing calls go
	// there. Empty: SetProxy gives it later (once the B2BUA is bound).
	Proxy string
	// RingTimeout bounds how long the devices may take to answer an
	// incoming call (480 and NoAnswer after it; default 60 s).
	RingTimeout time.Duration
	// Retention is how long an ended session stays readable by GET
	// (default 5 min); 404 after it.
	Retention time.Duration
	// SecureRetry sends a device's call again offering DTLS-SRTP when the
	// SIP side answers the plain RTP offer with 488 Not Acceptable Here.
	SecureRetry bool
	// SecureFor reports whether a device's call from number to receiver
	// goes only to SIP peers whose media is DTLS-SRTP by arrangement: its
	// first INVITE then offers DTLS-SRTP. nil: never.
	SecureFor func(number, receiver string) bool
	Log       *logrus.Entry
}

func (c Config) withDefaults() Config {
	if c.RingTimeout <= 0 {
		c.RingTimeout = 60 * time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return c
}

// Media is one call's media (a *webrtc.Session).
type Media interface {
	OfferFromWebRTC(ctx context.Context, browserOffer string) (string, error)
	AnswerFromSIP(ctx context.Context, sipAnswer string) (string, error)
	OfferFromSIP(ctx context.Context, sipOffer string) (string, error)
	AnswerFromWebRTC(ctx context.Context, browserAnswer string) (string, error)
	UpdateFromSIP(ctx context.Context, offer string) (string, error)
	SIPReoffer(ctx context.Context, dir webrtc.Direction) (string, error)
	ApplySIPAnswer(ctx context.Context, answer string) error
	// SecureSIPOffer makes the SIP offer of a device's call again, over
	// DTLS-SRTP, before any answer was taken.
	SecureSIPOffer(ctx context.Context) (string, error)
	// Answered starts timing legs that never sent media (before the
	// answer, silence is ringing).
	Answered()
	Close(ctx context.Context) error
}

// MediaEngine makes a call's media; onEnd is called once if the media ends
// by itself (ICE or DTLS failed, no RTP for the media timeout).
type MediaEngine interface {
	NewMedia(ctx context.Context, id string, onEnd func(reason error)) (Media, error)
}

// Devices knows the subscribers' device registrations (devreg.Service).
type Devices interface {
	// Live reports whether registration id of number is live.
	Live(ctx context.Context, number, id string) bool
	// HasDevice reports whether number has a live device registration.
	HasDevice(number string) bool
}

// Notifier tells the subscriber's apps of a session: a session-invitation
// for a new incoming call, a session-status for every later change. It
// returns how many subscriptions the event went to.
type Notifier interface {
	Notify(ctx context.Context, s calls.Session, invitation bool) (int, error)
}

// Gateway runs the media sessions.
type Gateway struct {
	cfg     Config
	media   MediaEngine
	devices Devices
	notify  Notifier
	log     *logrus.Entry

	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	client  *sipgo.Client
	dialogs *sipgo.DialogUA
	addr    *net.UDPAddr
	proxy   sip.Uri

	mu       sync.Mutex
	sessions map[string]*session // by mediaSessionId
	byCallID map[string]*session // by the SIP Call-ID of its dialog
	closed   bool
	calls    sync.WaitGroup // calls in progress
	cancel   context.CancelFunc
	served   chan struct{}
}

// ErrClosed is returned for new sessions once the gateway is closing.
var ErrClosed = errors.New("webrtc gateway closed")

// New builds a gateway; Start makes it listen.
func New(cfg Config, media MediaEngine, devices Devices, notify Notifier) (*Gateway, error) {
	cfg = cfg.withDefaults()
	g := &Gateway{cfg: cfg, media: media, devices: devices, notify: notify, log: cfg.Log,
		sessions: map[string]*session{}, byCallID: map[string]*session{}}
	if cfg.Proxy != "" {
		if err := g.SetProxy(cfg.Proxy); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// SetProxy sets the B2BUA's address (host:port, UDP) once it is known; an
// unspecified host (0.0.0.0, ::) means this machine's loopback.
func (g *Gateway) SetProxy(hostPort string) error {
	host, portStr, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Errorf("webrtc gateway proxy %q: %w", hostPort, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("webrtc gateway proxy %q: %w", hostPort, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	g.mu.Lock()
	g.proxy = sip.Uri{Host: host, Port: port}
	g.mu.Unlock()
	return nil
}

// proxyURI is where outgoing calls go; false before SetProxy.
func (g *Gateway) proxyURI() (sip.Uri, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proxy, g.proxy.Host != ""
}

// Start binds the gateway's SIP address and serves it until Close.
func (g *Gateway) Start(ctx context.Context) error {
	conn, err := net.ListenPacket("udp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webrtc gateway listen %s: %w", g.cfg.Listen, err)
	}
	g.addr = conn.LocalAddr().(*net.UDPAddr)
	g.ua, err = sipgo.NewUA(sipgo.WithUserAgent("callpath-webrtc"), sipgo.WithUserAgentHostname(g.addr.IP.String()))
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("webrtc gateway user agent: %w", err)
	}
	if g.srv, err = sipgo.NewServer(g.ua); err == nil {
		// Requests leave from the listening socket: the B2BUA sees the
		// gateway's own address as their source.
		g.client, err = sipgo.NewClient(g.ua, sipgo.WithClientHostname(g.addr.IP.String()), sipgo.WithClientPort(g.addr.Port),
			sipgo.WithClientConnectionAddr(g.addr.String()))
	}
	if err != nil {
		_ = conn.Close()
		_ = g.ua.Close()
		return fmt.Errorf("webrtc gateway user agent: %w", err)
	}
	g.dialogs = &sipgo.DialogUA{Client: g.client, ContactHDR: sip.ContactHeader{
		Address: sip.Uri{User: "webrtc", Host: g.addr.IP.String(), Port: g.addr.Port}}}
	g.srv.OnInvite(g.onInvite)
	g.srv.OnAck(g.onAck)
	g.srv.OnBye(g.onBye)
	g.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel, g.served = cancel, make(chan struct{})
	go func() {
		defer close(g.served)
		if err := g.srv.ServeUDP(conn); err != nil && sctx.Err() == nil {
			g.log.WithError(err).Error("webrtc gateway stopped serving SIP")
		}
	}()
	go func() { <-sctx.Done(); _ = conn.Close() }()
	return nil
}

// URI is where the B2BUA sends calls for the devices
// (routing.DevicesFirst's Gateway).
func (g *Gateway) URI() string {
	return "sip:" + g.addr.String()
}

// HasDevice implements routing.LiveDevices.
func (g *Gateway) HasDevice(number string) bool { return g.devices.HasDevice(number) }

// Close hangs up every call (BYE, CANCEL or 480 as their state asks), waits
// for them until ctx ends, and stops the user agent.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	open := make([]*session, 0, len(g.sessions))
	for _, s := range g.sessions {
		open = append(open, s)
	}
	g.mu.Unlock()
	for _, s := range open {
		s.hangUp(ctx, "the gateway is shutting down")
	}
	done := make(chan struct{})
	go func() { g.calls.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webrtc gateway: calls still ending: %w", ctx.Err())
	}
	if g.cancel != nil {
		g.cancel()
		<-g.served
		_ = g.ua.Close()
	}
	return err
}

// add files a new session; false when the gateway is closing.
func (g *Gateway) add(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.sessions[s.info.ID] = s
	g.byCallID[s.callID] = s
	g.calls.Add(1)
	return true
}

// ended forgets the SIP dialog of a session now over, and the session
// itself once Retention has passed.
func (g *Gateway) ended(s *session) {
	g.mu.Lock()
	delete(g.byCallID, s.callID)
	g.mu.Unlock()
	g.calls.Done()
	time.AfterFunc(g.cfg.Retention, func() {
		g.mu.Lock()
		delete(g.sessions, s.info.ID)
		g.mu.Unlock()
	})
}

// rekey moves an outgoing session to the new Call-ID of the INVITE it is
// sent again in.
func (g *Gateway) rekey(s *session, callID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.byCallID, s.callID)
	s.callID = callID
	g.byCallID[callID] = s
}

// session returns number's session id.
func (g *Gateway) session(number, id string) (*session, error) {
	g.mu.Lock()
	s := g.sessions[id]
	g.mu.Unlock()
	if s == nil || s.owner != number {
		return nil, calls.ErrNotFound
	}
	return s, nil
}

func (g *Gateway) byCall(callID string) *session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byCallID[callID]
}

// Get implements camara.MediaSessions.
func (g *Gateway) Get(ctx context.Context, number, id string) (calls.Session, error) {
	s, err := g.session(number, id)
	if err != nil {
		return calls.Session{}, err
	}
	return s.snapshot(), nil
}
