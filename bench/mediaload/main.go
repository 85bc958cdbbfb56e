// Command mediaload is the load process of `make bench-media`. It starts
// the system under test (bench/mediagw) as its own process, sets up N
// calls through it, sends 20 ms of audio every 20 ms in both directions of
// every call, and measures over a window: the gateway's CPU (calls per
// core, CPU per call), its allocations per packet sent, and the loss and
// one-way latency each direction saw.
//
// Relay: N pion WebRTC clients (DTLS-SRTP, ICE on loopback) call N plain
// RTP phones through callpath's media plane, all PCMU; the peer is a plain
// Go UDP relay of the same packets, N plain UDP "browsers" ↔ N phones,
// measured in the same run, rounds alternating which goes first.
// Transcode: the clients speak only Opus (a 1 kHz tone), the phones PCMU;
// the peer is libopus decode+encode of the same frames alone, timed in
// this process in the same run.
//
//	mediaload -gw bin/mediagw -calls 300 -tcalls 150 -duration 10s -rounds 3
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"
)

func main() {
	gw := flag.String("gw", "bin/mediagw", "the mediagw binary (built with -tags opus for transcoding)")
	calls := flag.Int("calls", 300, "relayed calls (0: skip the relay runs)")
	tcalls := flag.Int("tcalls", 150, "transcoded calls (0: skip the transcode runs)")
	duration := flag.Duration("duration", 10*time.Second, "measurement window per run")
	warmup := flag.Duration("warmup", 3*time.Second, "media flowing before the window opens")
	rounds := flag.Int("rounds", 3, "rounds; medians are reported")
	out := flag.String("out", "", "also write the summary (markdown) to this file")
	profile := flag.String("profile", "", "save the plane's allocation profiles at both ends of each window into this directory")
	cpuProfile := flag.String("cpuprofile", "", "save the plane's CPU profile over each window into this directory")
	only := flag.String("only", "", "to_phone, to_browser or none: send in one direction only, or not at all (to tell where costs are)")
	flag.Parse()
	switch *only {
	case "to_phone":
		onlyDirection = toPhone
	case "to_browser":
		onlyDirection = toBrowser
	case "none":
		onlyDirection = 2
	}

	cfg := runConfig{gw: *gw, duration: *duration, warmup: *warmup, profile: *profile, cpuProfile: *cpuProfile}
	var relayRuns, peerRuns, transRuns []result
	var codecAlone []float64
	for r := range *rounds {
		if *calls > 0 {
			order := []string{"plane", "udprelay"}
			if r%2 == 1 {
				order = []string{"udprelay", "plane"}
			}
			for _, mode := range order {
				res, err := run(cfg, mode, "pcmu", *calls)
				if err != nil {
					log.Fatalf("round %d, %s: %v", r+1, mode, err)
				}
				log.Printf("round %d %-8s relay: %s", r+1, mode, res)
				if mode == "plane" {
					relayRuns = append(relayRuns, res)
				} else {
					peerRuns = append(peerRuns, res)
				}
			}
		}
		if *tcalls > 0 {
			res, err := run(cfg, "plane", "opus", *tcalls)
			if err != nil {
				log.Fatalf("round %d, transcode: %v", r+1, err)
			}
			log.Printf("round %d plane    transcode: %s", r+1, res)
			transRuns = append(transRuns, res)
			perCore, err := codecCallsPerCore(2 * time.Second)
			if err != nil {
				log.Fatalf("codec alone: %v", err)
			}
			log.Printf("round %d libopus alone: %.0f calls per core", r+1, perCore)
			codecAlone = append(codecAlone, perCore)
		}
	}
	summary := report(*calls, *tcalls, *rounds, relayRuns, peerRuns, transRuns, codecAlone)
	fmt.Print(summary)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(summary), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// runConfig is what every run shares.
type runConfig struct {
	gw               string
	duration, warmup time.Duration
	profile          string // directory for allocation profiles; empty: none
	cpuProfile       string // directory for CPU profiles
}

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls, gw %.3f cores (%.0f calls/core), load %.2f cores, others %.2f cores, %.2f allocs/pkt (%.1f per call-second), loss %.3f%%/%.3f%%",
		r.calls, r.gwCores, r.callsPerCore(), r.loadCores, r.otherCores, r.allocsPerPacket, r.allocsPerCallSecond, 100*r.loss[toPhone], 100*r.loss[toBrowser])
	if r.latency[toPhone].total.Load() > 0 {
		fmt.Fprintf(&b, ", latency p50/p99 to phone %s/%s, to browser %s/%s",
			r.latency[toPhone].quantile(.5), r.latency[toPhone].quantile(.99), r.latency[toBrowser].quantile(.5), r.latency[toBrowser].quantile(.99))
	}
	return b.String()
}
