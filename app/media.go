package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"callpath/calls"
	"callpath/camara"
	"callpath/conf"
	"callpath/routing"
	"callpath/webrtc"
	"callpath/webrtcgw"
)

const callHandlingPath = "/webrtc-call-handling/v0.3"

// mediaStack is WebRTC calling: the media plane, the gateway that runs the
// CAMARA media sessions as SIP calls, and the call-handling API.
type mediaStack struct {
	engine *webrtc.Engine
	gw     *webrtcgw.Gateway
	api    *camara.CallHandling
}

// startMedia binds the media plane and the gateway, and routes calls for
// device numbers to the gateway. It runs before the B2BUA serves, which
// the gateway learns the address of afterwards (SetProxy).
func (a *App) startMedia(ctx context.Context) error {
	m := a.cfg.Media
	advertise := m.RTPAdvertise
	if advertise == "" {
		advertise = rtpAdvertise(a.cfg.SIP.AdvertisedHost, m.RTPListenIP)
	}
	eng, err := webrtc.NewEngine(ctx, webrtc.Config{
		ICEListen: m.ICEListen, ICEAdvertise: m.ICEAdvertise,
		RTPListenIP: m.RTPListenIP, RTPAdvertise: advertise, RTPPortMin: m.RTPPorts.Min, RTPPortMax: m.RTPPorts.Max,
		MediaTimeout: m.MediaTimeout, ConnectTimeout: m.ConnectTimeout, Codecs: m.Codecs, DisableOpus: m.DisableOpus,
		Log: a.log.WithField("component", "media"), Metrics: a.metrics.Media,
	})
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	gw, err := webrtcgw.New(webrtcgw.Config{Listen: m.GatewayListen, RingTimeout: m.RingTimeout, Retention: m.Retention,
		SecureRetry: m.SIPDTLSSRTP == conf.SIPDTLSOn488, SecureFor: a.secureFor(m),
		Log: a.log.WithField("component", "webrtc-gateway")},
		mediaEngine{eng: eng, sipSecure: m.SIPDTLSSRTP == conf.SIPDTLSAlways}, a.camara.devices, sessionEvents{a.camara.events})
	if err == nil {
		err = gw.Start(ctx)
	}
	if err != nil {
		_ = eng.Close(ctx)
		return fmt.Errorf("webrtc gateway: %w", err)
	}
	a.media = &mediaStack{engine: eng, gw: gw,
		api: &camara.CallHandling{BasePath: a.cfg.CAMARA.BasePath + callHandlingPath, Verifier: a.verifier, Sessions: gw}}
	a.breakout.Destinations = routing.DevicesFirst{Devices: a.camara.devices, Gateway: gw.URI(), Next: a.breakout.Destinations}
	return nil
}

// secureFor tells the gateway which device calls offer DTLS-SRTP at once:
// those whose routing plan (the same the B2BUA will make for the call)
// rings only peers of media.dtls_srtp_peers. nil when none are listed or
// the SIP side never gets DTLS-SRTP.
func (a *App) secureFor(m conf.Media) func(number, receiver string) bool {
	if len(m.DTLSSRTPPeers) == 0 || m.SIPDTLSSRTP == conf.SIPDTLSNever {
		return nil
	}
	peers := routing.NewSecurePeers(m.DTLSSRTPPeers)
	return func(number, receiver string) bool {
		return peers.Plan(a.breakout.Plan(routing.BreakoutCall{Call: routing.Call{From: number, To: receiver}, Stage: routing.StageMO}))
	}
}

// currentSession is the state of a subscriber's media session, in its
// wire form, for an initial session-status event.
func (a *App) currentSession(ctx context.Context, number, id string) (any, bool) {
	if a.media == nil {
		return nil, false
	}
	s, err := a.media.gw.Get(ctx, number, id)
	if err != nil {
		return nil, false
	}
	return camara.MediaSessionOf(s), true
}

// rtpAdvertise picks the address the SIP side's SDP announces when none is
// configured: the SIP advertised host if it is an address, the listen
// address if it is one, else this machine's address toward its default
// route (found without sending anything).
func rtpAdvertise(sipHost, listenIP string) string {
	if ip, err := netip.ParseAddr(sipHost); err == nil {
		return ip.String()
	}
	if ip, err := netip.ParseAddr(listenIP); err == nil && !ip.IsUnspecified() {
		return ip.String()
	}
	if conn, err := net.Dial("udp4", "192.0.2.1:9"); err == nil { // TEST-NET-1: connect() sends no packet
		defer conn.Close()
		return conn.LocalAddr().(*net.UDPAddr).IP.String()
	}
	return "127.0.0.1"
}

// routes mounts the call-handling API.
func (m *mediaStack) routes(c *camaraStack, mux *http.ServeMux, base string) {
	if m == nil {
		return
	}
	mux.Handle(base+callHandlingPath+"/", c.counted("webrtc-call-handling", m.api.Handler()))
}

// shutdown hangs up the WebRTC calls and closes the media plane.
func (m *mediaStack) shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return errors.Join(m.gw.Close(ctx), m.engine.Close(ctx))
}

// mediaEngine gives the gateway the media plane's sessions.
type mediaEngine struct {
	eng       *webrtc.Engine
	sipSecure bool // media.sip_dtls_srtp: always
}

func (m mediaEngine) NewMedia(ctx context.Context, id string, onEnd func(error)) (webrtcgw.Media, error) {
	return m.eng.NewSession(ctx, webrtc.SessionOptions{ID: id, OnEnd: onEnd, SIPSecure: m.sipSecure})
}

// sessionEvents publishes the gateway's session changes to the
// subscriber's webrtc-events subscriptions: session-invitation for a new
// incoming call, session-status for the rest.
type sessionEvents struct{ events *camara.Events }

func (e sessionEvents) Notify(ctx context.Context, s calls.Session, invitation bool) (int, error) {
	typ := camara.TypeSessionStatus
	if invitation {
		typ = camara.TypeSessionInvitation
	}
	return e.events.Publish(ctx, camara.Event{PhoneNumber: s.Owner, Type: typ, SessionID: s.ID,
		Data: camara.MediaSessionOf(s)})
}
