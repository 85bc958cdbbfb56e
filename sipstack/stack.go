// Package sipstack is callpath's SIP transaction layer (RFC 3261 §17) and its
// UDP transport. sipgo parses and serialises messages and carries the stream
// transports (TCP, TLS, WS, WSS); what sipgo does per message beyond that — a
// goroutine for every message received, a context and runtime timers for
// every transaction, finished transactions kept 32 s — costs more than a
// B2BUA at thousands of calls per second can pay, so that part is ours:
//
//   - UDP datagrams are read by a few long-lived loops that parse and match
//     them in place; responses and retransmissions never leave the loop.
//   - Handlers run on the read loop too and must not block: responses of
//     client transactions can come back as callbacks (RequestFunc), so no
//     goroutine waits through a call setup.
//   - Retransmission and timeout timers run only while a transaction waits;
//     finished transactions absorb retransmissions for Config.Linger on one
//     coarse wheel, then are forgotten.
//
// Transactions implement sipgo's sip.ServerTransaction and
// sip.ClientTransaction, so the B2BUA is written against sipgo's interfaces.
package sipstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"
)

// Handler receives every request that starts a server transaction, and every
// ACK for a 2xx, which has none (tx is nil then). It runs on the read loop
// of the socket or connection: it must not block.
type Handler func(req *sip.Request, tx sip.ServerTransaction)

// Config holds the timers of RFC 3261 §17 and what the transports need.
type Config struct {
	T1, T2, T4 time.Duration
	// Linger is how long a finished transaction absorbs retransmissions
	// (Timers D, I, J, K, L, M). RFC 3261 says 64*T1 for most; zero means
	// that.
	Linger    time.Duration
	ClientTLS *tls.Config // outgoing TLS and WSS; nil: system CAs
	Log       *logrus.Entry
	SipgoLog  *slog.Logger // for sipgo's stream transports
	// UDPReaders is the number of read loops per UDP socket (0: one per CPU,
	// at least two).
	UDPReaders int
	// Unmatched, if set, gets the responses that match no transaction
	// (RFC 3261 §17.1.1.2 passes them to the core), and the 2xx responses
	// after the first of an INVITE transaction without OnRetransmission
	// callbacks, on the read loop: retransmitted 2xx to re-ACK, and 2xx of
	// other forks.
	Unmatched func(*sip.Response)
}

// Stack is one SIP endpoint: its sockets, transports and transactions.
type Stack struct {
	cfg     Config
	handler Handler
	log     *logrus.Entry
	tpl     *sip.TransportLayer
	server  *txTable[*serverTx]
	client  *txTable[*clientTx]
	reaper  *reaper

	udpMu  sync.Mutex
	udp    *net.UDPConn // the socket UDP requests leave from
	ownUDP *net.UDPConn // opened by udpSocket, closed by Close
	udpWG  sync.WaitGroup

	tlsOut tlsDialer // the TLS connections DialTLS made

	closed atomic.Bool
	stats  Stats
}

// Stats counts what the stack dropped or gave up on.
type Stats struct {
	Unparseable, Unmatched atomic.Int64
}

// New builds a stack that hands requests to handler.
func New(cfg Config, handler Handler) *Stack {
	if cfg.T1 <= 0 {
		cfg.T1, cfg.T2, cfg.T4 = 500*time.Millisecond, 4*time.Second, 5*time.Second
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 64 * cfg.T1
	}
	if cfg.Log == nil {
		l := logrus.New()
		cfg.Log = logrus.NewEntry(l)
	}
	if cfg.SipgoLog == nil {
		cfg.SipgoLog = slog.Default()
	}
	if cfg.UDPReaders <= 0 {
		cfg.UDPReaders = max(2, runtime.GOMAXPROCS(0))
	}
	s := &Stack{
		cfg: cfg, handler: handler, log: cfg.Log,
		server: newTxTable[*serverTx](), client: newTxTable[*clientTx](),
		reaper: newReaper(100 * time.Millisecond),
	}
	s.tpl = sip.NewTransportLayer(net.DefaultResolver, sip.NewParser(), cfg.ClientTLS,
		sip.WithTransportLayerLogger(cfg.SipgoLog))
	s.tpl.OnMessage(s.receiveStream)
	return s
}

// Stats returns the stack's counters.
func (s *Stack) Stats() *Stats { return &s.stats }

// Transactions returns the number of server and client transactions held.
func (s *Stack) Transactions() (server, client int) { return s.server.len(), s.client.len() }

// ServeUDP reads SIP from conn until it is closed. The first socket served
// is the one UDP requests are sent from.
func (s *Stack) ServeUDP(conn *net.UDPConn) error {
	s.udpMu.Lock()
	if s.udp == nil {
		s.udp = conn
	}
	s.udpMu.Unlock()
	errs := make(chan error, s.cfg.UDPReaders)
	for range s.cfg.UDPReaders {
		s.udpWG.Add(1)
		go func() {
			defer s.udpWG.Done()
			errs <- s.readUDP(conn)
		}()
	}
	var first error
	for range s.cfg.UDPReaders {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ServeTCP, ServeTLS, ServeWS and ServeWSS serve a stream listener through
// sipgo's transports.
func (s *Stack) ServeTCP(l net.Listener) error { return s.tpl.ServeTCP(l) }
func (s *Stack) ServeTLS(l net.Listener) error { return s.tpl.ServeTLS(l) }
func (s *Stack) ServeWS(l net.Listener) error  { return s.tpl.ServeWS(l) }
func (s *Stack) ServeWSS(l net.Listener) error { return s.tpl.ServeWSS(l) }

// Close ends every transaction and closes connections; the sockets handed to
// Serve* belong to the caller and must be closed by it.
func (s *Stack) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	for _, tx := range s.client.all() {
		tx.end(sip.ErrTransactionTerminated, true)
	}
	for _, tx := range s.server.all() {
		tx.terminate(sip.ErrTransactionTerminated)
	}
	s.reaper.close()
	err := s.tpl.Close()
	s.tlsOut.closeAll()
	s.udpMu.Lock()
	if s.ownUDP != nil {
		_ = s.ownUDP.Close()
	}
	s.udpMu.Unlock()
	return err
}

// receive dispatches a parsed message; r says where replies go.
func (s *Stack) receive(msg sip.Message, r route) {
	switch m := msg.(type) {
	case *sip.Request:
		s.receiveRequest(m, r)
	case *sip.Response:
		r.release()
		s.receiveResponse(m)
	}
}

func (s *Stack) receiveRequest(req *sip.Request, r route) {
	if req.IsAck() {
		r.release()
		if key, err := serverKey(req, sip.ACK); err == nil {
			if tx, ok := s.server.get(key); ok && tx.receiveAck(req) {
				return
			}
		}
		// The ACK of a 2xx is a transaction of its own (RFC 3261 §17.1.1.3).
		s.handler(req, nil)
		return
	}
	key, err := serverKey(req, req.Method)
	if err != nil {
		s.rejectStateless(req, r)
		return
	}
	if req.IsCancel() {
		inviteKey, _ := serverKey(req, sip.INVITE)
		if inv, ok := s.server.get(inviteKey); ok {
			s.receiveCancel(req, key, inv, r)
			return
		}
	}
	tx, created := s.server.getOrAdd(key, func() *serverTx { return newServerTx(s, key, req, r) })
	if !created {
		r.release()
		tx.receiveRetransmission(req)
		return
	}
	s.handler(req, tx)
}

// receiveCancel answers a CANCEL that matches an INVITE server transaction (RFC
// 3261 §9.2): 200 for the CANCEL, 487 for the INVITE if it has no final
// response yet, then the INVITE's OnCancel callbacks.
func (s *Stack) receiveCancel(req *sip.Request, key string, inv *serverTx, r route) {
	tx := newServerTx(s, key, req, r)
	if !s.server.add(key, tx) {
		r.release()
		if prev, ok := s.server.get(key); ok {
			prev.receiveRetransmission(req)
		}
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	inv.cancel(req)
}

// rejectStateless answers a request that cannot start a transaction
// (no CSeq) with 400, when it says where to (a Via).
func (s *Stack) rejectStateless(req *sip.Request, r route) {
	defer r.release()
	if req.Via() == nil || req.IsAck() {
		return
	}
	res := sip.NewResponseFromRequest(req, 400, "Bad Request (missing CSeq)", nil)
	_ = s.write(&r, res)
}

func (s *Stack) receiveResponse(res *sip.Response) {
	key, ok := responseKey(res)
	if !ok {
		s.stats.Unmatched.Add(1)
		return
	}
	tx, ok := s.client.get(key)
	if !ok {
		s.stats.Unmatched.Add(1)
		if s.cfg.Unmatched != nil {
			s.cfg.Unmatched(res)
		}
		return
	}
	tx.receive(res)
}

// Request starts a client transaction for req, which must carry its own
// Via with a unique branch; its responses come on the transaction's
// Responses channel. ctx bounds the connection set-up only.
func (s *Stack) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	return s.RequestFunc(ctx, req, Callbacks{})
}

// RequestFunc is Request with the responses handed to callbacks on the read
// loop instead of a channel: no goroutine waits for them. When it returns an
// error, no callback is called.
func (s *Stack) RequestFunc(ctx context.Context, req *sip.Request, on Callbacks) (sip.ClientTransaction, error) {
	if s.closed.Load() {
		return nil, sip.ErrTransactionTerminated
	}
	via := req.Via()
	if via == nil {
		return nil, errors.New("sipstack: request has no Via")
	}
	branch, _ := via.Params.Get("branch")
	if branch == "" {
		return nil, errors.New("sipstack: request has no Via branch")
	}
	r, err := s.routeRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	tx := newClientTx(s, clientKey(branch, req.Method), req, r, on)
	if !s.client.add(tx.key, tx) {
		r.release()
		return nil, fmt.Errorf("sipstack: branch %s already in use", branch)
	}
	if err := tx.start(); err != nil {
		return nil, err
	}
	return tx, nil
}

// Send sends a request outside any transaction: the ACK of a 2xx.
func (s *Stack) Send(ctx context.Context, req *sip.Request) error {
	r, err := s.routeRequest(ctx, req)
	if err != nil {
		return err
	}
	defer r.release()
	return s.write(&r, req)
}
