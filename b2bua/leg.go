package b2bua

import (
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// legSide says which role callpath plays on a leg.
type legSide int

const (
	sideUAS legSide = iota // the incoming leg: callpath answered its INVITE
	sideUAC                // an outgoing leg: callpath sent its INVITE
)

// leg is one SIP dialog of a call, seen from callpath (RFC 3261 §12). All
// fields after mu are guarded by it; the identity fields before it never
// change after the leg is created.
type leg struct {
	call     *call
	index    int // 1 incoming, 2.. outgoing (cdr.Leg.Index)
	side     legSide
	callID   string
	localTag string
	key      string // call table key: Call-ID and our tag

	local     sip.Uri // our URI (From on requests we send)
	localName string
	remote    sip.Uri // the peer's URI (To on requests we send)
	remoteNm  string
	transport string // transport of in-dialog requests, as the dialog was made
	contact   *sip.ContactHeader

	// incoming leg only: how its INVITE looked, to tell a late
	// retransmission from a merged request.
	remoteCSeqAtStart uint32
	branch            string

	mu           sync.Mutex
	remoteTag    string
	remoteTarget sip.Uri   // Contact of the peer
	routeSet     []sip.Uri // RFC 3261 §12.1: Record-Route, ordered for sending
	flow         string    // reliable transports: the peer's connection address, reused for requests
	localCSeq    uint32
	remoteCSeq   uint32
	pendingAck   *pendingAck  // a 2xx to an INVITE we relayed to this leg, awaiting its ACK
	lastAck      *sip.Request // the ACK we last sent on this leg, for 2xx retransmissions
	lastInvite   *sip.Request // our INVITE of that ACK, for a 2xx from another fork
	ackForget    *time.Timer  // drops lastAck and lastInvite 64*T1 after the ACK
}

func dialogKey(callID, localTag string) string {
	return callID + "\x00" + localTag
}

// originKey identifies an incoming INVITE by what its sender chose: Call-ID
// and From tag (RFC 3261 §8.2.2.2). The "\x01" keeps it apart from dialog keys.
func originKey(callID, fromTag string) string {
	return callID + "\x01" + fromTag
}

// nextCSeq reserves the CSeq number of a new request on the leg.
func (l *leg) nextCSeq() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.localCSeq++
	return l.localCSeq
}

// acceptRemoteCSeq enforces RFC 3261 §12.2.2: in-dialog requests must come
// with increasing CSeq numbers; a lower one gets 500.
func (l *leg) acceptRemoteCSeq(n uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.remoteCSeq != 0 && n <= l.remoteCSeq {
		return false
	}
	l.remoteCSeq = n
	return true
}

// learnTarget updates the remote target and, for the first 2xx, the route
// set, from a response or request of the peer (RFC 3261 §12.1.2, §12.2.1.2).
func (l *leg) learnTarget(msg sip.Message, routeSet bool, reverse bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := firstHeader(msg, "Contact"); c != nil {
		if ch, ok := c.(*sip.ContactHeader); ok && ch.Address.Host != "" {
			l.remoteTarget = *ch.Address.Clone()
		}
	}
	if !routeSet {
		return
	}
	var routes []sip.Uri
	for _, h := range headersNamed(msg, "Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			routes = append(routes, *rr.Address.Clone())
		}
	}
	if reverse {
		for i, j := 0, len(routes)-1; i < j; i, j = i+1, j-1 {
			routes[i], routes[j] = routes[j], routes[i]
		}
	}
	l.routeSet = routes
}

// newRequest builds an in-dialog request (RFC 3261 §12.2.1.1). Via is added
// by the caller's send path so that each transaction gets its own branch.
func (l *leg) newRequest(method sip.RequestMethod, cseq uint32) *sip.Request {
	l.mu.Lock()
	target := *l.remoteTarget.Clone()
	routes := l.routeSet
	remoteTag := l.remoteTag
	flow := l.flow
	l.mu.Unlock()

	req := sip.NewRequest(method, target)
	for i := range routes {
		req.AppendHeader(&sip.RouteHeader{Address: *routes[i].Clone()})
	}
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: l.remoteNm, Address: *l.remote.Clone(), Params: sip.NewParams()}
	if remoteTag != "" {
		to.Params.Add("tag", remoteTag)
	}
	req.AppendHeader(to)
	callID := sip.CallIDHeader(l.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	if method != sip.BYE && method != sip.CANCEL {
		req.AppendHeader(l.contact)
	}
	req.SetTransport(l.transport)
	if flow != "" {
		req.SetDestination(flow)
	}
	return req
}

// transportOf normalises a transport name for Via and URI parameters.
func transportOf(msg interface{ Transport() string }) string {
	tp := strings.ToUpper(msg.Transport())
	if tp == "" {
		return "UDP"
	}
	return tp
}
