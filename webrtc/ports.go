package webrtc

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// portAllocator hands out the SIP leg's UDP port pairs: an even port for
// RTP and the next for RTCP (RFC 3550 §11). It walks the range round-robin
// so that a port just given back is not reused at once (late packets of
// the last call would reach the next), and skips ports something else
// holds.
type portAllocator struct {
	ip       netip.Addr
	min, max int // min even; max the last usable RTCP port

	mu    sync.Mutex
	next  int
	inUse map[int]bool
}

func newPortAllocator(ip netip.Addr, minPort, maxPort int) *portAllocator {
	if minPort%2 == 1 {
		minPort++
	}
	return &portAllocator{ip: ip, min: minPort, max: maxPort, next: minPort, inUse: map[int]bool{}}
}

// portPair is one call's two sockets.
type portPair struct {
	rtp, rtcp *net.UDPConn
	port      int // the RTP port; 0 when system-picked
}

// allocate binds a free pair. With no range configured the system picks
// both ports, which then need not be adjacent.
func (a *portAllocator) allocate() (portPair, error) {
	if a.min == 0 && a.max == 0 {
		return a.allocateEphemeral()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pairs := (a.max - a.min + 1) / 2
	for range pairs {
		port := a.next
		a.next += 2
		if a.next+1 > a.max {
			a.next = a.min
		}
		if a.inUse[port] {
			continue
		}
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, uint16(port))))
		if err != nil {
			continue // held by another process
		}
		rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, uint16(port+1))))
		if err != nil {
			_ = rtp.Close()
			continue
		}
		a.inUse[port] = true
		return portPair{rtp: rtp, rtcp: rtcp, port: port}, nil
	}
	return portPair{}, fmt.Errorf("%w: %d-%d", ErrNoPorts, a.min, a.max)
}

func (a *portAllocator) allocateEphemeral() (portPair, error) {
	rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, 0)))
	if err != nil {
		return portPair{}, fmt.Errorf("%w: %w", ErrNoPorts, err)
	}
	rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, 0)))
	if err != nil {
		_ = rtp.Close()
		return portPair{}, fmt.Errorf("%w: %w", ErrNoPorts, err)
	}
	return portPair{rtp: rtp, rtcp: rtcp}, nil
}

// release closes the pair's sockets and gives its ports back.
func (a *portAllocator) release(p portPair) {
	_ = p.rtp.Close()
	_ = p.rtcp.Close()
	if p.port == 0 {
		return
	}
	a.mu.Lock()
	delete(a.inUse, p.port)
	a.mu.Unlock()
}
