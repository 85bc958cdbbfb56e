package main

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
)

// serveRelay runs the peer: per call two UDP sockets and one goroutine
// per socket, each packet read, its SSRC rewritten in place and sent out
// of the other socket: the least a Go relay of the same packets does.
func serveRelay(mux *http.ServeMux, packets *atomic.Uint64) {
	mux.HandleFunc("POST /relays", func(w http.ResponseWriter, r *http.Request) {
		var req RelayRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a, errA := netip.ParseAddrPort(req.A)
		b, errB := netip.ParseAddrPort(req.B)
		if errA != nil || errB != nil {
			http.Error(w, "bad peer address", http.StatusBadRequest)
			return
		}
		sa, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		sb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			_ = sa.Close()
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		go relay(sa, sb, b, 0x1111, packets)
		go relay(sb, sa, a, 0x2222, packets)
		writeJSON(w, RelayResponse{PortA: sa.LocalAddr().(*net.UDPAddr).Port, PortB: sb.LocalAddr().(*net.UDPAddr).Port})
	})
}

func relay(from, to *net.UDPConn, dst netip.AddrPort, ssrc uint32, packets *atomic.Uint64) {
	buf := make([]byte, 1500)
	for {
		n, _, err := from.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		binary.BigEndian.PutUint32(buf[8:], ssrc)
		if _, err := to.WriteToUDPAddrPort(buf[:n], dst); err == nil {
			packets.Add(1)
		}
	}
}
