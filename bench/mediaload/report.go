package main

import (
	"fmt"
	"strings"
	"time"
)

// report writes the markdown summary: medians over rounds, the peer beside
// the plane, and their ratios.
func report(calls, tcalls, rounds int, plane, peer, trans []result, codecAlone []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Media plane (make bench-media), %s, %d rounds, medians\n\n", time.Now().Format("2006-01-02 15:04"), rounds)
	if calls > 0 {
		fmt.Fprintf(&b, "Relay, %d concurrent PCMU calls (pion WebRTC clients ↔ RTP phones; peer: plain Go UDP relay, same packets, same run):\n\n", calls)
		b.WriteString("| system | gateway CPU (cores) | calls per core | CPU per call (% of a core) | allocs per packet (per call-second) | load / others (cores) | loss to phone / to browser | one-way latency p50 / p99 to phone | to browser |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		row(&b, "callpath media plane", plane)
		row(&b, "plain Go UDP relay", peer)
		pc, uc := median(callsPerCore(plane)), median(callsPerCore(peer))
		fmt.Fprintf(&b, "\ncalls per core: plane %.0f, UDP relay %.0f, **ratio %.2f** (target ≥ 300 calls/core, 0 allocs/packet on the relay path).\n", pc, uc, pc/uc)
		fmt.Fprintf(&b, "Added latency of the plane over the UDP relay (p50): to phone %s, to browser %s.\n",
			medLatency(plane, toPhone, .5)-medLatency(peer, toPhone, .5), medLatency(plane, toBrowser, .5)-medLatency(peer, toBrowser, .5))
		fmt.Fprintf(&b, "Rounds (plane/peer calls per core): %s\n", rounds2(plane, peer))
	}
	if tcalls > 0 {
		fmt.Fprintf(&b, "\nTranscode, %d concurrent Opus ↔ PCMU calls (libopus at 8 kHz, complexity 5; peer: libopus decode+encode of the same frames alone, same run):\n\n", tcalls)
		b.WriteString("| system | gateway CPU (cores) | calls per core | CPU per call (% of a core) | allocs per packet (per call-second) | load / others (cores) | loss to phone / to browser |\n")
		b.WriteString("|---|---|---|---|---|---|---|\n")
		row(&b, "callpath media plane", trans)
		ca := median(codecAlone)
		fmt.Fprintf(&b, "| libopus alone | | %.0f | %.3f | | | |\n", ca, 100/ca)
		tc := median(callsPerCore(trans))
		fmt.Fprintf(&b, "\ncalls per core: plane %.0f, libopus alone %.0f, **ratio %.2f** (target ≥ 100 calls/core).\n", tc, ca, tc/ca)
	}
	return b.String()
}

func row(b *strings.Builder, name string, rs []result) {
	if len(rs) == 0 {
		return
	}
	var cores, perCore, allocs, perSecond, load, others, loss0, loss1 []float64
	for _, r := range rs {
		cores = append(cores, r.gwCores)
		perSecond = append(perSecond, r.allocsPerCallSecond)
		load = append(load, r.loadCores)
		others = append(others, r.otherCores)
		perCore = append(perCore, r.callsPerCore())
		allocs = append(allocs, r.allocsPerPacket)
		loss0 = append(loss0, 100*r.loss[toPhone])
		loss1 = append(loss1, 100*r.loss[toBrowser])
	}
	c := median(cores)
	fmt.Fprintf(b, "| %s | %.3f | %.0f | %.3f | %.2f (%.1f) | %.2f / %.2f | %.3f %% / %.3f %% |", name, c, median(perCore), 100*c/float64(rs[0].calls),
		median(allocs), median(perSecond), median(load), median(others), median(loss0), median(loss1))
	if rs[0].latency[toPhone].total.Load() > 0 {
		fmt.Fprintf(b, " %s / %s | %s / %s |", medLatency(rs, toPhone, .5), medLatency(rs, toPhone, .99), medLatency(rs, toBrowser, .5), medLatency(rs, toBrowser, .99))
	}
	b.WriteString("\n")
}

func callsPerCore(rs []result) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.callsPerCore())
	}
	return out
}

func medLatency(rs []result, direction int, q float64) time.Duration {
	var ds []time.Duration
	for _, r := range rs {
		ds = append(ds, r.latency[direction].quantile(q))
	}
	return medianDuration(ds)
}

func rounds2(plane, peer []result) string {
	var parts []string
	for i := range plane {
		p := "-"
		if i < len(peer) {
			p = fmt.Sprintf("%.0f", peer[i].callsPerCore())
		}
		parts = append(parts, fmt.Sprintf("%.0f/%s", plane[i].callsPerCore(), p))
	}
	return strings.Join(parts, ", ")
}
