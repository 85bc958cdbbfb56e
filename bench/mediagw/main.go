// Command mediagw is the system under test of `make bench-media`: it runs
// callpath's media plane (-mode plane) or, as the peer DESIGN §6 names, a
// plain Go UDP relay of the same packets (-mode udprelay), and takes its
// calls from the load process (bench/mediaload) over a small HTTP API on
// loopback. It prints "listening ADDR" once ready.
//
//	mediagw -mode plane            # callpath's webrtc.Engine
//	mediagw -mode udprelay         # two sockets per call, SSRC rewrite only
//
// GET /stats reports the process's CPU time (getrusage), allocations
// (runtime.MemStats.Mallocs) and the RTP packets it has sent, so the load
// process can take deltas over its measurement window.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"callpath/webrtc"

	"github.com/sirupsen/logrus"
)

// CallRequest asks for one call through the plane: the load's browser
// offer and its phone's SDP (the phone answers whatever it is offered).
type CallRequest struct {
	BrowserOffer string `json:"browser_offer"`
	PhoneSDP     string `json:"phone_sdp"`
}

// CallResponse returns the SIP offer (where the phone sends) and the
// answer for the browser.
type CallResponse struct {
	SIPOffer  string `json:"sip_offer"`
	WebAnswer string `json:"web_answer"`
}

// RelayRequest asks the UDP relay for one call between two peers.
type RelayRequest struct {
	A, B string // the peers' addresses
}

// RelayResponse gives the relay's two ports: A sends to PortA, B to PortB.
type RelayResponse struct {
	PortA, PortB int
}

// Stats are the process's counters.
type Stats struct {
	CPUNanos   int64  `json:"cpu_ns"`
	Mallocs    uint64 `json:"mallocs"`
	PacketsOut uint64 `json:"packets_out"`
	Sessions   int    `json:"sessions"`
}

func main() {
	mode := flag.String("mode", "plane", "plane (callpath's media plane) or udprelay (the plain Go peer)")
	allocWindow := flag.Bool("allocwindow", false, "record no allocations until POST /allocs/start, then every one (exact allocation profiles of a window)")
	flag.Parse()
	if *allocWindow {
		runtime.MemProfileRate = 0
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var packets atomic.Uint64
	mux := http.NewServeMux()
	switch *mode {
	case "plane":
		servePlane(mux, &packets)
	case "udprelay":
		serveRelay(mux, &packets)
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		writeJSON(w, Stats{CPUNanos: ru.Utime.Nano() + ru.Stime.Nano(), Mallocs: ms.Mallocs, PacketsOut: packets.Load()})
	})
	// Profiles of the process under load: go tool pprof http://ADDR/debug/pprof/allocs
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("POST /allocs/start", func(w http.ResponseWriter, r *http.Request) {
		runtime.MemProfileRate = 1
		writeJSON(w, map[string]bool{"recording": true})
	})
	fmt.Printf("listening %s\n", ln.Addr())
	_ = os.Stdout.Sync()
	log.Fatal(http.Serve(ln, mux))
}

// servePlane runs the media plane: POST /calls sets one call up the way the
// B2BUA would for a browser calling a SIP phone.
func servePlane(mux *http.ServeMux, packets *atomic.Uint64) {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	eng, err := webrtc.NewEngine(context.Background(), webrtc.Config{
		ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1", RTPPortMin: 40000, RTPPortMax: 59999,
		MediaTimeout: time.Minute, Log: logrus.NewEntry(l), Metrics: &countingMetrics{packets: packets},
	})
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	var sessions []*webrtc.Session
	mux.HandleFunc("POST /calls", func(w http.ResponseWriter, r *http.Request) {
		var req CallRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s, err := eng.NewSession(r.Context(), webrtc.SessionOptions{ID: "bench"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		sipOffer, err := s.OfferFromWebRTC(r.Context(), req.BrowserOffer)
		if err != nil {
			_ = s.Close(r.Context())
			http.Error(w, err.Error(), http.StatusNotAcceptable)
			return
		}
		webAnswer, err := s.AnswerFromSIP(r.Context(), req.PhoneSDP)
		if err != nil {
			_ = s.Close(r.Context())
			http.Error(w, err.Error(), http.StatusNotAcceptable)
			return
		}
		mu.Lock()
		sessions = append(sessions, s)
		mu.Unlock()
		writeJSON(w, CallResponse{SIPOffer: sipOffer, WebAnswer: webAnswer})
	})
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		up := 0
		for _, s := range sessions {
			if s.Info().Connected {
				up++
			}
		}
		writeJSON(w, map[string]int{"sessions": len(sessions), "connected": up})
	})
}

// countingMetrics counts the packets the plane sends on both legs.
type countingMetrics struct{ packets *atomic.Uint64 }

func (m *countingMetrics) Packets(_, direction string, packets, _ int) {
	if direction == "out" {
		m.packets.Add(uint64(packets))
	}
}
func (*countingMetrics) SessionStarted(string, string)                  {}
func (*countingMetrics) SessionEnded(string, string, string)            {}
func (*countingMetrics) Dropped(string, string, int)                    {}
func (*countingMetrics) ReceptionReport(string, float64, time.Duration) {}
func (*countingMetrics) TranscodeTime(string, time.Duration)            {}
func (*countingMetrics) SetupFailed(string)                             {}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
