package b2bua

import (
	"context"
	"net"
	"syscall"
)

// listenUDP opens the UDP socket with a large kernel receive buffer: the
// default one overflows in bursts long before the CPU is busy
// (notes/test-peers.md). SO_RCVBUFFORCE passes net.core.rmem_max when we are
// allowed to; otherwise SO_RCVBUF gives what the kernel allows.
func listenUDP(addr string, rcvbuf int) (*net.UDPConn, error) {
	network := "udp"
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
			network = "udp4"
		}
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if rcvbuf <= 0 {
			return nil
		}
		return c.Control(func(fd uintptr) {
			if err := setRcvBufForce(fd, rcvbuf); err != nil {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
