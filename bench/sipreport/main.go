// Command sipreport turns the raw results of bench/sip.sh into tables.
//
//	go run ./bench/sipreport [-max-fail 0.1] OUTDIR
//
// OUTDIR holds one directory per step, <system>/round<R>/rate<N>/, each with
// step.env (written by sip.sh), SIPp's statistics files of the load callers
// (uac*_stat.csv), of the latency probe (probe_stat.csv) and the probe's short
// message log (probe_short.csv). It writes OUTDIR/steps.csv and
// OUTDIR/summary.md and prints the summary, a markdown fragment for
// BENCHMARKS.md.
//
// Definitions:
//   - attempted/ok/failed: SIPp's TotalCallCreated, SuccessfulCall(C) and
//     FailedCall(C) summed over the load callers and the probe; calls created
//     but never finished, and calls offered (rate x step) but never placed,
//     count as failed.
//   - failed %: failed / attempted.
//   - CPU % (of one core): utime+stime of the system under test (its whole
//     process tree) over the step's window (first call placed -> last caller
//     exited), from /proc/<pid>/stat.
//   - CPU per 1,000 calls/s: CPU seconds of the system per successful call x
//     1,000 x 100, i.e. the share of one core that 1,000 calls/s cost.
//   - setup p50/p99: INVITE sent -> 200 received, per call of the latency
//     probe (a separate SIPp placing probe_rate calls/s through the same system
//     during the step), from the microsecond timestamps of SIPp's short message
//     log (-trace_shortmsg). SIPp's own response-time statistics (-trace_rtt,
//     the screens) use CLOCK_MONOTONIC_COARSE and come in 4 ms steps here.
//   - highest sustained rate: the highest offered rate with failed % below
//     -max-fail; with several rounds, the median over rounds, and the other
//     figures are medians over rounds at that rate.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	maxFail := flag.Float64("max-fail", 0.1, "highest failed-call percentage that still counts as sustained")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: sipreport [-max-fail PCT] OUTDIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	out := flag.Arg(0)
	steps, err := loadSteps(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipreport:", err)
		os.Exit(1)
	}
	if len(steps) == 0 {
		fmt.Fprintf(os.Stderr, "sipreport: no steps under %s\n", out)
		os.Exit(1)
	}
	f, err := os.Create(filepath.Join(out, "steps.csv"))
	if err == nil {
		writeCSV(f, steps)
		f.Close()
	}
	var b strings.Builder
	writeSummary(&b, steps, *maxFail, readEnv(filepath.Join(out, "meta.env")))
	_ = os.WriteFile(filepath.Join(out, "summary.md"), []byte(b.String()), 0o644)
	fmt.Print(b.String())
}

// Step is one measured load step.
type Step struct {
	System  string
	Round   int
	Rate    int // offered calls/s (load callers + probe)
	StepS   float64
	WindowS float64

	Attempted, OK, Failed int
	FailPct               float64
	SUTCPUPct             float64 // % of one core
	SIPpCPUPct            float64 // all SIPp processes of the step, % of one core
	OthersCPUPct          float64 // everything else on the machine (shared machine: noise)
	CPUPer1000            float64 // % of one core per 1,000 calls/s
	SUTPSSMiB             float64 // memory of the system's process tree at the step's end
	P50, P99              float64 // ms, NaN when no probe sample
	Samples               int
	Dir                   string
}

func loadSteps(out string) ([]Step, error) {
	envs, err := filepath.Glob(filepath.Join(out, "*", "round*", "rate*", "step.env"))
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, envPath := range envs {
		dir := filepath.Dir(envPath)
		if strings.Contains(filepath.Base(dir), ".aborted") { // cut short, re-run by sip.sh
			continue
		}
		env := readEnv(envPath)
		s := Step{
			System:  env["system"],
			Round:   atoi(env["round"]),
			Rate:    atoi(env["rate"]),
			StepS:   atof(env["step_s"]),
			WindowS: atof(env["window_s"]),
			Dir:     dir,
		}
		callers, _ := filepath.Glob(filepath.Join(dir, "uac*_stat.csv"))
		callers = append(callers, filepath.Join(dir, "probe_stat.csv"))
		for _, c := range callers {
			created, ok, failed, err := statCounters(c)
			if err != nil {
				continue
			}
			s.Attempted += created
			s.OK += ok
			s.Failed += failed
		}
		// Created but never finished (caller stopped by its timeout): failed.
		if unfinished := s.Attempted - s.OK - s.Failed; unfinished > 0 {
			s.Failed += unfinished
		}
		// Offered but never placed (SIPp holds new calls back when too many
		// are open, i.e. the system is overloaded): failed too.
		if offered := int(float64(s.Rate) * s.StepS); s.StepS > 0 && s.Attempted < offered {
			s.Failed += offered - s.Attempted
			s.Attempted = offered
		}
		if s.Attempted > 0 {
			s.FailPct = 100 * float64(s.Failed) / float64(s.Attempted)
		} else {
			s.FailPct = 100
		}
		hz := atof(env["hz"])
		if hz <= 0 {
			hz = 100
		}
		sutCPU := atof(env["sut_ticks"]) / hz
		if s.WindowS > 0 {
			s.SUTCPUPct = 100 * sutCPU / s.WindowS
			s.SIPpCPUPct = 100 * atof(env["sipp_cpu_s"]) / s.WindowS
			s.OthersCPUPct = math.NaN()
			if b, ok := env["machine_busy_ticks"]; ok {
				s.OthersCPUPct = math.Max(0, 100*atof(b)/hz/s.WindowS-s.SUTCPUPct-s.SIPpCPUPct)
			}
		}
		if s.OK > 0 {
			s.CPUPer1000 = 100 * sutCPU / float64(s.OK) * 1000
		}
		s.SUTPSSMiB = atof(env["sut_pss_kib"]) / 1024
		lat := setupTimes(filepath.Join(dir, "probe_short.csv"))
		s.Samples = len(lat)
		s.P50, s.P99 = percentile(lat, 50), percentile(lat, 99)
		steps = append(steps, s)
	}
	sort.Slice(steps, func(i, j int) bool {
		a, b := steps[i], steps[j]
		if a.System != b.System {
			return a.System < b.System
		}
		if a.Round != b.Round {
			return a.Round < b.Round
		}
		return a.Rate < b.Rate
	})
	return steps, nil
}

func readEnv(path string) map[string]string {
	m := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(k, "#") {
			m[k] = strings.Trim(v, `"'`)
		}
	}
	return m
}

// statCounters reads the cumulative counters from the last line of a SIPp
// -trace_stat file.
func statCounters(path string) (created, ok, failed int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		return 0, 0, 0, fmt.Errorf("%s: no data", path)
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	col := func(name string) int {
		for i, h := range head {
			if h == name && i < len(last) {
				return atoi(last[i])
			}
		}
		return 0
	}
	return col("TotalCallCreated"), col("SuccessfulCall(C)"), col("FailedCall(C)"), nil
}

// setupTimes reads a SIPp -trace_shortmsg log (tab-separated: date, time,
// epoch seconds.micro, S|R, Call-ID, "CSeq:1 INVITE", first line) and returns
// INVITE sent -> 200 received per call, in milliseconds.
func setupTimes(path string) []float64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sent := map[string]float64{}
	done := map[string]bool{}
	var out []float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 7 || !strings.HasSuffix(fields[5], " INVITE") {
			continue
		}
		ts, err := strconv.ParseFloat(fields[2], 64)
		if err != nil {
			continue
		}
		id := fields[4]
		switch {
		case fields[3] == "S" && strings.HasPrefix(fields[6], "INVITE "):
			if _, seen := sent[id]; !seen && !done[id] { // first send, not a retransmission
				sent[id] = ts
			}
		case fields[3] == "R" && strings.HasPrefix(fields[6], "SIP/2.0 200"):
			if t0, ok := sent[id]; ok {
				out = append(out, (ts-t0)*1000)
				delete(sent, id)
				done[id] = true // later retransmissions are not new samples
			}
		}
	}
	return out
}

// percentile is the nearest-rank percentile; NaN for no data.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	return s[rank-1]
}

func writeCSV(w io.Writer, steps []Step) {
	fmt.Fprintln(w, "system,round,rate,attempted,ok,failed,failed_pct,window_s,sut_cpu_pct,sipp_cpu_pct,others_cpu_pct,cpu_per_1000_pct,sut_pss_mib,setup_p50_ms,setup_p99_ms,probe_samples,dir")
	for _, s := range steps {
		fmt.Fprintf(w, "%s,%d,%d,%d,%d,%d,%.4f,%.2f,%.1f,%.1f,%.1f,%.2f,%.0f,%.3f,%.3f,%d,%s\n",
			s.System, s.Round, s.Rate, s.Attempted, s.OK, s.Failed, s.FailPct, s.WindowS,
			s.SUTCPUPct, s.SIPpCPUPct, s.OthersCPUPct, s.CPUPer1000, s.SUTPSSMiB, s.P50, s.P99, s.Samples, s.Dir)
	}
}

// agg is one (system, rate) cell: medians over rounds.
type agg struct {
	rate                                                     int
	failPct, sutCPU, sippCPU, others, per1000, p50, p99, rss float64
	attempted, ok, failed                                    int
	rounds                                                   int
}

type sysResult struct {
	name      string
	cells     map[int]*agg
	maxRate   int // median over rounds of each round's highest sustained rate
	rounds    int
	halfRate  int
	roundMaxs []int
}

func aggregate(steps []Step, maxFail float64) []*sysResult {
	bySys := map[string][]Step{}
	var names []string
	for _, s := range steps {
		if _, ok := bySys[s.System]; !ok {
			names = append(names, s.System)
		}
		bySys[s.System] = append(bySys[s.System], s)
	}
	sort.Strings(names)
	var res []*sysResult
	for _, name := range names {
		ss := bySys[name]
		r := &sysResult{name: name, cells: map[int]*agg{}}
		byRate := map[int][]Step{}
		byRound := map[int][]Step{}
		for _, s := range ss {
			byRate[s.Rate] = append(byRate[s.Rate], s)
			byRound[s.Round] = append(byRound[s.Round], s)
		}
		for rate, list := range byRate {
			a := &agg{rate: rate, rounds: len(list)}
			med := func(f func(Step) float64) float64 {
				v := make([]float64, 0, len(list))
				for _, s := range list {
					if x := f(s); !math.IsNaN(x) {
						v = append(v, x)
					}
				}
				return median(v)
			}
			a.failPct = med(func(s Step) float64 { return s.FailPct })
			a.sutCPU = med(func(s Step) float64 { return s.SUTCPUPct })
			a.sippCPU = med(func(s Step) float64 { return s.SIPpCPUPct })
			a.others = med(func(s Step) float64 { return s.OthersCPUPct })
			a.per1000 = med(func(s Step) float64 { return s.CPUPer1000 })
			a.p50 = med(func(s Step) float64 { return s.P50 })
			a.p99 = med(func(s Step) float64 { return s.P99 })
			a.rss = med(func(s Step) float64 { return s.SUTPSSMiB })
			for _, s := range list {
				a.attempted += s.Attempted
				a.ok += s.OK
				a.failed += s.Failed
			}
			r.cells[rate] = a
		}
		var rounds []int
		for round := range byRound {
			rounds = append(rounds, round)
		}
		sort.Ints(rounds)
		r.rounds = len(rounds)
		for _, round := range rounds {
			best := 0
			for _, s := range byRound[round] {
				if s.FailPct < maxFail && s.Rate > best {
					best = s.Rate
				}
			}
			r.roundMaxs = append(r.roundMaxs, best)
		}
		f := make([]float64, len(r.roundMaxs))
		for i, m := range r.roundMaxs {
			f[i] = float64(m)
		}
		r.maxRate = nearestRate(r.cells, median(f))
		r.halfRate = nearestRate(r.cells, float64(r.maxRate)/2)
		res = append(res, r)
	}
	return res
}

// nearestRate is the measured rate closest to x (lower one on ties); 0 if none
// or x is 0.
func nearestRate(cells map[int]*agg, x float64) int {
	if x <= 0 {
		return 0
	}
	best, bestD := 0, math.Inf(1)
	for rate := range cells {
		d := math.Abs(float64(rate) - x)
		if d < bestD || (d == bestD && rate < best) {
			best, bestD = rate, d
		}
	}
	return best
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f", x)
}

func num(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

func writeSummary(w io.Writer, steps []Step, maxFail float64, meta map[string]string) {
	res := aggregate(steps, maxFail)
	fmt.Fprintf(w, "### SIP load: zero-length calls (INVITE/100/180/200/ACK/BYE/200)\n\n")
	if len(meta) > 0 {
		fmt.Fprintf(w, "Loopback, %s, %s s steps, %s round(s), latency probe %s calls/s, %s; started %s.\n\n",
			strings.ToUpper(meta["transport"]), meta["step_s"], meta["rounds"], meta["probe_rate"],
			meta["machine"], meta["started"])
	}
	fmt.Fprintf(w, "| system | highest sustained calls/s (< %g %% failed) | setup p50 / p99 at that rate (ms) | at half of it (ms) | CPU per 1,000 calls/s (%% of one core) | CPU at that rate (%% of one core) |\n", maxFail)
	fmt.Fprintf(w, "|---|---|---|---|---|---|\n")
	for _, r := range res {
		top, half := r.cells[r.maxRate], r.cells[r.halfRate]
		if top == nil {
			fmt.Fprintf(w, "| %s | none | – | – | – | – |\n", r.name)
			continue
		}
		halfS := "–"
		if half != nil {
			halfS = fmt.Sprintf("%s / %s (at %d)", ms(half.p50), ms(half.p99), half.rate)
		}
		rounds := ""
		if r.rounds > 1 {
			rounds = fmt.Sprintf(" (rounds: %v)", r.roundMaxs)
		}
		fmt.Fprintf(w, "| %s | %d%s | %s / %s | %s | %s | %s |\n", r.name, r.maxRate, rounds,
			ms(top.p50), ms(top.p99), halfS, num(top.per1000, 1), num(top.sutCPU, 0))
	}
	byName := map[string]*sysResult{}
	for _, r := range res {
		byName[r.name] = r
	}
	// callpath against the reference proxy, and a forked call against a
	// plain one through callpath.
	for _, pair := range [][2]string{{"callpath", "kamailio"}, {"callpath-fork", "callpath"}} {
		a, b := byName[pair[0]], byName[pair[1]]
		if a == nil || b == nil {
			continue
		}
		at, bt := a.cells[a.maxRate], b.cells[b.maxRate]
		if at == nil || bt == nil {
			continue
		}
		ratio := func(x, y float64) string {
			if y == 0 || math.IsNaN(x) || math.IsNaN(y) {
				return "–"
			}
			return fmt.Sprintf("%.2f", x/y)
		}
		ah, bh := a.cells[a.halfRate], b.cells[b.halfRate]
		halfR := "–"
		if ah != nil && bh != nil {
			halfR = ratio(ah.p50, bh.p50) + " / " + ratio(ah.p99, bh.p99)
		}
		fmt.Fprintf(w, "| **%s / %s** | %s | %s / %s | %s | %s | %s |\n", a.name, b.name,
			ratio(float64(a.maxRate), float64(b.maxRate)), ratio(at.p50, bt.p50), ratio(at.p99, bt.p99),
			halfR, ratio(at.per1000, bt.per1000), ratio(at.sutCPU, bt.sutCPU))
	}
	fmt.Fprintf(w, "\nPer step (calls summed over rounds, the other figures are medians over rounds):\n\n")
	fmt.Fprintf(w, "| system | offered calls/s | attempted | ok | failed | failed %% | CPU system (%% core) | CPU SIPp (%% core) | CPU others (%% core) | CPU per 1,000 calls/s | PSS (MiB) | setup p50 (ms) | setup p99 (ms) |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res {
		var rates []int
		for rate := range r.cells {
			rates = append(rates, rate)
		}
		sort.Ints(rates)
		for _, rate := range rates {
			c := r.cells[rate]
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.name, rate,
				c.attempted, c.ok, c.failed, num(c.failPct, 3), num(c.sutCPU, 0), num(c.sippCPU, 0), num(c.others, 0),
				num(c.per1000, 1), num(c.rss, 0), ms(c.p50), ms(c.p99))
		}
	}
	fmt.Fprintf(w, "\nSetup time = INVITE sent -> 200 received at a separate SIPp probe caller, from the microsecond timestamps of its -trace_shortmsg log (SIPp's own response-time statistics come in 4 ms steps). CPU = utime+stime of the system's process tree over the step, from /proc; \"others\" = the rest of the machine (it is shared: a high value means a disturbed step). Raw data: steps.csv and one directory per step.\n")
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return f
}
