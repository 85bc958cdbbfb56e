package sipstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrTLSNameConflict says that the TLS connection to an address, which
// requests to that address share, was verified for another name than the one
// asked for, and its certificate cannot be shown to be valid for that one.
var ErrTLSNameConflict = errors.New("sipstack: the TLS connection to this address is verified for another name")

const (
	// tlsDialTimeout bounds DialTLS's connect and handshake when its
	// context allows longer.
	tlsDialTimeout = 10 * time.Second
	// tlsWriteTimeout bounds each message written on a connection of
	// DialTLS's: a peer that does not read for that long loses it.
	tlsWriteTimeout = 10 * time.Second
)

// DialTLS makes sure that requests sent over TLS to addr (a request's
// Destination of addr.String(), Transport TLS) go over a connection whose
// peer certificate was verified for serverName: the host of the sips: URI,
// not an SRV target or the address (RFC 5922 §4). cfg (nil: Config.ClientTLS,
// or the system's roots if that is nil too) is cloned with ServerName set to
// serverName, which also goes as SNI, and TLS 1.2 at least; ctx bounds the
// connect and the handshake (at most 10 s).
//
// The connection goes into sipgo's TLS pool under the address, where
// Request, RequestFunc and Send find it and the requests the peer sends on it
// find it for their responses; it stays until the peer closes it, a write
// fails, or the stack closes. Only one connection per address can be in the
// pool, so:
//
//   - If one of DialTLS's is there, it is used when it was verified for
//     serverName with cfg's roots, or when its certificate chain verifies
//     for serverName with them now (a certificate valid for several names,
//     RFC 5923 §5). Otherwise DialTLS returns ErrTLSNameConflict and leaves
//     it in place, since the requests it carries go to the same address;
//     it also does when cfg has VerifyPeerCertificate or VerifyConnection,
//     which cannot be run again for an established connection.
//   - If another is there, one sipgo dialed for a request without DialTLS
//     (verified against the address or the Destination's host, at best) or
//     one the peer opened to us from that very address, DialTLS dials its
//     own and puts it in the pool in its place: every request to the
//     address then goes over a connection verified for a name. The
//     displaced connection is not closed: transactions that hold it finish
//     on it, and its reader still delivers what the peer sends, but
//     sipgo's pool no longer knows it, so the stack remembers it to close
//     it in Close.
//
// Concurrent calls for one address share a dial. An error from the connect
// or the handshake is returned as it is, wrapped (a certificate that does
// not verify: *tls.CertificateVerificationError around the x509 error).
func (s *Stack) DialTLS(ctx context.Context, addr netip.AddrPort, serverName string, cfg *tls.Config) error {
	if serverName == "" {
		return errors.New("sipstack: DialTLS: no server name to verify the peer for")
	}
	if !addr.IsValid() || addr.Port() == 0 {
		return fmt.Errorf("sipstack: DialTLS: bad address %s", addr)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	key := tlsPoolKey(addr)
	if cfg == nil {
		cfg = s.cfg.ClientTLS
	}
	d := &s.tlsOut
	pool := s.tpl.Pool("tls")
	for {
		d.mu.Lock()
		if s.closed.Load() {
			d.mu.Unlock()
			return fmt.Errorf("sipstack: DialTLS %s: %w", key, net.ErrClosed)
		}
		if done, ok := d.dialing[key]; ok {
			d.mu.Unlock()
			select {
			case <-done:
				continue // look again: it may be there now
			case <-ctx.Done():
				return fmt.Errorf("sipstack: DialTLS %s: %w", key, ctx.Err())
			}
		}
		if c := pool.Get(key); c != nil {
			_, _ = c.TryClose() // the reference Get took
			if ours, ok := c.(*tlsConn); ok && !ours.isClosed() {
				d.mu.Unlock()
				return ours.verifyFor(serverName, cfg)
			}
		}
		if d.dialing == nil {
			d.dialing = make(map[string]chan struct{})
			d.conns = make(map[*tlsConn]struct{})
		}
		done := make(chan struct{})
		d.dialing[key] = done
		d.mu.Unlock()

		c, err := dialTLS(ctx, addr, key, serverName, cfg)

		d.mu.Lock()
		delete(d.dialing, key)
		close(done)
		if err == nil && s.closed.Load() {
			_ = c.Close()
			err = fmt.Errorf("sipstack: DialTLS %s: %w", key, net.ErrClosed)
		}
		if err != nil {
			d.mu.Unlock()
			return err
		}
		if old := pool.Get(key); old != nil {
			// Someone else's, added while we dialed, or the one we
			// replace. A reference left after Get's is a live connection.
			if ref, _ := old.TryClose(); ref > 0 {
				d.displaced = slices.DeleteFunc(d.displaced, func(c sip.Connection) bool { return c.Ref(0) <= 0 })
				d.displaced = append(d.displaced, old)
			}
		}
		d.conns[c] = struct{}{}
		pool.Add(key, c)
		d.mu.Unlock()
		go s.readTLS(c)
		return nil
	}
}

// tlsPoolKey is the key sipgo's pool and ClientRequestConnection use for a
// remote address: "IP:port", "[IPv6]:port", without a zone.
func tlsPoolKey(addr netip.AddrPort) string {
	return netip.AddrPortFrom(addr.Addr().WithZone(""), addr.Port()).String()
}

// tlsDialer is a Stack's record of the TLS connections DialTLS made.
type tlsDialer struct {
	mu        sync.Mutex
	dialing   map[string]chan struct{} // pool key → closed when that dial ends
	conns     map[*tlsConn]struct{}    // ours, until their reader ends
	displaced []sip.Connection         // others' that ours replaced in the pool
}

// forget drops a connection whose reader has ended.
func (d *tlsDialer) forget(c *tlsConn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
}

// closeAll closes our connections and the ones they displaced; Stack.Close
// calls it after closing sipgo's transports (which close the pooled ones).
func (d *tlsDialer) closeAll() {
	d.mu.Lock()
	conns := make([]sip.Connection, 0, len(d.conns)+len(d.displaced))
	for c := range d.conns {
		conns = append(conns, c)
	}
	conns = append(conns, d.displaced...)
	clear(d.conns)
	d.displaced = nil
	d.mu.Unlock()
	for _, c := range conns {
		if c.Ref(0) > 0 {
			_ = c.Close()
		}
	}
}

// dialTLS connects to addr and verifies the peer for serverName.
func dialTLS(ctx context.Context, addr netip.AddrPort, key, serverName string, cfg *tls.Config) (*tlsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, tlsDialTimeout)
	defer cancel()
	tc := &tls.Config{}
	if cfg != nil {
		tc = cfg.Clone()
	}
	tc.ServerName = serverName
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("sipstack: DialTLS %s for %s: %w", addr, serverName, err)
	}
	conn := tls.Client(raw, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("sipstack: DialTLS %s for %s: %w", addr, serverName, err)
	}
	return &tlsConn{
		conn: conn, key: key,
		peer:     conn.ConnectionState().PeerCertificates,
		verified: []verifiedFor{{serverName, tc.RootCAs}},
		ref:      2, // the pool's and the reader's
	}, nil
}

// tlsConn is a TLS connection of DialTLS's in sipgo's pool: a
// sip.Connection, reference counted like sipgo's TCPConnection. The pool
// holds one reference and the reader one; each route that Get hands out
// holds one until it releases it. When the reader ends, it takes the
// connection out of the pool and closes it whatever the count.
type tlsConn struct {
	conn *tls.Conn
	key  string              // pool key: the remote address
	peer []*x509.Certificate // the peer's chain, leaf first

	wmu sync.Mutex // one message at a time, each under its own deadline

	mu       sync.Mutex
	ref      int
	closed   bool
	verified []verifiedFor // names (and roots) the peer is verified for
}

var _ sip.Connection = (*tlsConn)(nil)

type verifiedFor struct {
	name  string
	roots *x509.CertPool // nil: the system's
}

func (c *tlsConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// WriteMsg serialises msg and writes it. A failed write leaves the TLS
// stream unusable (a record cut short, or tls.Conn's sticky error after a
// timeout), so the connection is closed and its reader takes it out of the
// pool.
func (c *tlsConn) WriteMsg(msg sip.Message) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	msg.StringWrite(buf)
	err := c.write(buf.Bytes())
	if buf.Cap() <= 64<<10 {
		bufPool.Put(buf)
	}
	return err
}

func (c *tlsConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.conn.SetWriteDeadline(time.Now().Add(tlsWriteTimeout))
	if err == nil {
		_, err = c.conn.Write(b)
	}
	if err != nil {
		c.mu.Lock()
		c.ref, c.closed = 0, true
		c.mu.Unlock()
		// Not tls.Conn.Close: its close_notify would wait on the peer
		// that did not read.
		_ = c.conn.NetConn().Close()
		return fmt.Errorf("sipstack: TLS %s: write: %w", c.key, err)
	}
	return nil
}

func (c *tlsConn) Ref(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ref += i
	return c.ref
}

// TryClose gives back a reference and closes the connection with the last.
func (c *tlsConn) TryClose() (int, error) {
	c.mu.Lock()
	c.ref--
	ref := c.ref
	if ref < 0 {
		c.ref = 0 // closed already: given back after Close
	}
	c.mu.Unlock()
	if ref > 0 {
		return ref, nil
	}
	if ref < 0 {
		return 0, nil
	}
	return 0, c.Close()
}

// Close closes the connection whatever the references.
func (c *tlsConn) Close() error {
	c.mu.Lock()
	c.ref = 0
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if was {
		return nil
	}
	return c.conn.Close()
}

func (c *tlsConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// verifyFor says whether requests for serverName may use the connection: it
// was verified for the name with cfg's roots, or its peer's chain verifies
// for them now as a handshake with cfg would have checked it.
func (c *tlsConn) verifyFor(serverName string, cfg *tls.Config) error {
	var roots *x509.CertPool
	if cfg != nil {
		roots = cfg.RootCAs
	}
	want := verifiedFor{serverName, roots}
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.verified, want) {
		return nil
	}
	if cfg != nil && (cfg.VerifyPeerCertificate != nil || cfg.VerifyConnection != nil) {
		return fmt.Errorf("%w: %s, verified for %s, cannot be checked again with custom verification for %s",
			ErrTLSNameConflict, c.key, c.verified[0].name, serverName)
	}
	if cfg == nil || !cfg.InsecureSkipVerify {
		if len(c.peer) == 0 {
			return fmt.Errorf("%w: %s: no peer certificate", ErrTLSNameConflict, c.key)
		}
		opts := x509.VerifyOptions{DNSName: serverName, Roots: roots, Intermediates: x509.NewCertPool()}
		if cfg != nil && cfg.Time != nil {
			opts.CurrentTime = cfg.Time()
		}
		for _, ic := range c.peer[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if _, err := c.peer[0].Verify(opts); err != nil {
			return fmt.Errorf("%w: %s, verified for %s: %w", ErrTLSNameConflict, c.key, c.verified[0].name, err)
		}
	}
	c.verified = append(c.verified, want)
	return nil
}

// readTLS reads a connection of DialTLS's until it fails or closes, and
// hands what it parses to receiveStream like sipgo's readers do. Then it
// takes the connection out of the pool (if the pool still has this one under
// its key) and closes it.
func (s *Stack) readTLS(c *tlsConn) {
	pool := s.tpl.Pool("tls")
	par := sip.NewParser().NewSIPStream()
	log := s.log.WithField("remote", c.key)
	defer func() {
		par.Close()
		_ = pool.CloseAndDelete(c, c.key)
		s.tlsOut.forget(c)
	}()
	buf := make([]byte, sip.TransportBufferReadSize)
	// between: the parser holds nothing of a message, so CRLFs are
	// keepalives (RFC 5626 §3.5.1). Inside a message a CRLF that arrives
	// alone is the end of a header line or of the headers.
	between := true
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			log.WithError(err).Debug("TLS connection closed")
			return
		}
		data := buf[:n]
		if between {
			// Double CRLF is a ping, answered with one CRLF; a single
			// CRLF is a pong. Both may come in front of a message.
			rest := bytes.TrimLeft(data, "\r\n")
			if bytes.Contains(data[:n-len(rest)], []byte("\r\n\r\n")) {
				if err := c.write([]byte("\r\n")); err != nil {
					log.WithError(err).Debug("TLS keepalive pong failed")
					return
				}
			}
			if data = rest; len(data) == 0 {
				continue
			}
		}
		err = par.ParseSIPStream(data, func(msg sip.Message) {
			msg.SetTransport("TLS")
			msg.SetSource(c.key)
			s.receiveStream(msg)
		})
		switch {
		case err == nil:
			between = true
		case errors.Is(err, sip.ErrParseSipPartial):
			between = false
		default:
			// No message boundary to resynchronise on.
			s.stats.Unparseable.Add(1)
			log.WithError(err).Debug("unparseable TLS stream, closing")
			return
		}
	}
}
