// Command relayload is the load process of `make bench-relay`: it holds N
// WebSocket connections to a relay (callpath's, or the bare peer of
// bench/relaypeer), measures the relay's memory per connection, then POSTs
// events to the connections' sinks at a fixed rate and measures the latency
// from each POST to the event arriving on its socket, acknowledging every
// event as an app does. It prints one JSON object.
//
//	relayload -mode callpath -ws ws://127.0.0.1:26191/relay/v1/connect -key dev-issuer.key -pid PID -metrics http://127.0.0.1:26191/metrics
//	relayload -mode peer -ws ws://127.0.0.1:26190/ws -sinks http://127.0.0.1:26190/sinks/ -pid PID -metrics http://127.0.0.1:26190/metrics
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"callpath/auth"
)

// Result is one run's figures.
type Result struct {
	Mode            string  `json:"mode"`
	Target          int     `json:"conns_target"`
	Connected       int     `json:"conns_ok"`
	ConnectFailed   int     `json:"conns_failed"`
	HeldAtEnd       int64   `json:"conns_held_end"`
	ConnectSeconds  float64 `json:"connect_s"`
	RSSBefore       int64   `json:"rss_before"`
	RSSHeld         int64   `json:"rss_held"`
	RSSEnd          int64   `json:"rss_end"`
	BytesPerConn    float64 `json:"bytes_per_conn"`    // RSS growth / connections
	GoBytesPerConn  float64 `json:"go_bytes_per_conn"` // Go heap + stacks in use growth / connections
	Rate            int     `json:"rate_target"`
	Sent            int64   `json:"sent"`
	Accepted        int64   `json:"accepted"` // 204
	Errors          int64   `json:"errors"`
	Unsent          int64   `json:"unsent"` // the POST workers could not keep the rate
	Received        int64   `json:"received"`
	Lost            int64   `json:"lost"` // accepted, never received
	EventsPerSecond float64 `json:"events_per_s"`
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	Maxms           float64 `json:"max_ms"`
}

type client struct {
	ws    *websocket.Conn
	sink  string
	token string
}

type load struct {
	mode string
	ack  bool
	// measureFrom: events sent before it (the warm-up: HTTP connections
	// being opened, goroutines and buffers growing) are not measured.
	measureFrom atomic.Int64
	mu          sync.Mutex
	lat         []time.Duration
	sentAt      []int64 // with lat, for -trace
	received    atomic.Int64
	open        atomic.Int64
}

func main() {
	mode := flag.String("mode", "callpath", "callpath or peer")
	wsURL := flag.String("ws", "", "WebSocket URL to connect to")
	sinks := flag.String("sinks", "", "peer: sink URL prefix (connection number appended)")
	keyFile := flag.String("key", "", "callpath: dev issuer key file to mint the apps' tokens with")
	n := flag.Int("n", 10000, "connections")
	rate := flag.Int("rate", 2000, "events per second")
	dur := flag.Duration("d", 20*time.Second, "event phase")
	pid := flag.Int("pid", 0, "relay process id (memory)")
	metricsURL := flag.String("metrics", "", "relay /metrics (Go memory)")
	source := flag.String("source", "127.0.0.1", "local address to connect from (a fresh one per run avoids running out of ports)")
	dialers := flag.Int("dialers", 64, "connections opened at once")
	workers := flag.Int("workers", 64, "concurrent POSTs")
	hold := flag.Duration("hold", 5*time.Second, "wait after connecting before measuring memory")
	warmup := flag.Duration("warmup", 3*time.Second, "events at the rate before measuring")
	trace := flag.String("trace", "", "write each measured event's send time and latency (ms) to this file")
	flag.Parse()
	if *wsURL == "" || (*mode == "peer" && *sinks == "") || (*mode == "callpath" && *keyFile == "") {
		fmt.Fprintln(os.Stderr, "relayload: -ws, and -sinks (peer) or -key (callpath), are required")
		os.Exit(2)
	}
	res := Result{Mode: *mode, Target: *n, Rate: *rate}
	l := &load{mode: *mode, ack: *mode == "callpath"}
	local := &net.TCPAddr{IP: net.ParseIP(*source)}

	var issuer *auth.DevIssuer
	if *mode == "callpath" {
		var err error
		if issuer, err = auth.LoadOrCreateDevIssuer(*keyFile, "callpath-dev", "callpath"); err != nil {
			fail(err)
		}
	}
	gc(*metricsURL)
	res.RSSBefore = rss(*pid)
	goBefore := goMemory(*metricsURL)

	// Connect.
	clients := make([]*client, *n)
	start := time.Now()
	var failed atomic.Int64
	sem := make(chan struct{}, *dialers)
	var wg sync.WaitGroup
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: (&net.Dialer{LocalAddr: local}).DialContext,
		ReadBufferSize: 1024, WriteBufferSize: 512}
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := l.connect(dialer, issuer, *wsURL, *sinks, i)
			if err != nil {
				if failed.Add(1) <= 3 {
					fmt.Fprintf(os.Stderr, "relayload: connection %d: %v\n", i, err)
				}
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	res.ConnectSeconds = time.Since(start).Seconds()
	res.ConnectFailed = int(failed.Load())
	res.Connected = *n - res.ConnectFailed
	live := slices.DeleteFunc(clients, func(c *client) bool { return c == nil })
	fmt.Fprintf(os.Stderr, "relayload: %s: %d connections in %.1f s\n", *mode, len(live), res.ConnectSeconds)

	// Hold, then measure what the connections cost the relay.
	// The relay's memory settles for a fixed time: there is nothing to poll.
	// An interrupt ends the wait (and the run) at once.
	if !pause(*hold) {
		fmt.Fprintln(os.Stderr, "relayload: interrupted")
		os.Exit(1)
	}
	gc(*metricsURL)
	res.RSSHeld = rss(*pid)
	if len(live) > 0 {
		res.BytesPerConn = float64(res.RSSHeld-res.RSSBefore) / float64(len(live))
		if goBefore > 0 {
			res.GoBytesPerConn = float64(goMemory(*metricsURL)-goBefore) / float64(len(live))
		}
	}

	// Events at a fixed rate, round robin over the connections.
	if len(live) > 0 && *rate > 0 {
		l.events(live, local, *rate, *warmup, *dur, *workers, &res)
	}
	res.HeldAtEnd = l.open.Load()
	res.RSSEnd = rss(*pid)
	l.mu.Lock()
	lat := l.lat
	if *trace != "" {
		var b bytes.Buffer
		for i, d := range lat {
			fmt.Fprintf(&b, "%.3f %.3f\n", float64(l.sentAt[i]-l.sentAt[0])/1e6, ms(d))
		}
		if err := os.WriteFile(*trace, b.Bytes(), 0o644); err != nil {
			fail(err)
		}
	}
	lat = slices.Clone(lat)
	l.mu.Unlock()
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50ms = ms(lat[len(lat)/2])
		res.P99ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
		res.Maxms = ms(lat[len(lat)-1])
	}
	for _, c := range live {
		_ = c.ws.Close()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func (l *load) connect(d websocket.Dialer, issuer *auth.DevIssuer, wsURL, sinks string, i int) (*client, error) {
	h := http.Header{}
	u := wsURL
	if issuer != nil {
		tok, err := issuer.Mint(auth.Token{Subject: fmt.Sprint("bench-", i), PhoneNumber: fmt.Sprintf("+4791%07d", i), TTL: time.Hour})
		if err != nil {
			return nil, err
		}
		h.Set("Authorization", "Bearer "+tok)
		d.Subprotocols = []string{"callpath.relay.v1"}
		u += "?deviceId=bench"
	} else {
		u += "?id=" + strconv.Itoa(i)
	}
	ws, res, err := d.Dial(u, h)
	if err != nil {
		if res != nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			return nil, fmt.Errorf("%w: %d %s", err, res.StatusCode, body)
		}
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, hello, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	c := &client{ws: ws, sink: sinks + strconv.Itoa(i)}
	if issuer != nil {
		var h struct {
			Sink           string `json:"sink"`
			SinkCredential struct {
				AccessToken string `json:"accessToken"`
			} `json:"sinkCredential"`
		}
		if err := json.Unmarshal(hello, &h); err != nil || h.Sink == "" {
			ws.Close()
			return nil, fmt.Errorf("hello %s: %v", hello, err)
		}
		c.sink, c.token = h.Sink, h.SinkCredential.AccessToken
	}
	l.open.Add(1)
	go l.read(c)
	return c, nil
}

// read receives a connection's events: latency from the "t" the POST put
// in, and an acknowledgement per event (callpath).
func (l *load) read(c *client) {
	defer l.open.Add(-1)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		t := intAfter(data, []byte(`"t":`))
		if t == 0 {
			continue
		}
		l.received.Add(1)
		if t >= l.measureFrom.Load() {
			l.mu.Lock()
			l.lat = append(l.lat, now.Sub(time.Unix(0, t)))
			l.sentAt = append(l.sentAt, t)
			l.mu.Unlock()
		}
		if l.ack {
			seq := intAfter(data, []byte(`"seq":`))
			ack := append(strconv.AppendInt([]byte(`{"type":"ack","seq":`), seq, 10), '}')
			if err := c.ws.WriteMessage(websocket.TextMessage, ack); err != nil {
				return
			}
		}
	}
}

// events POSTs rate events per second for dur from workers goroutines.
func (l *load) events(clients []*client, local *net.TCPAddr, rate int, warmup, dur time.Duration, workers int, res *Result) {
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext, MaxIdleConns: workers, MaxIdleConnsPerHost: workers}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	jobs := make(chan int, rate)
	var sent, accepted, errs atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body bytes.Buffer
			for k := range jobs {
				c := clients[k%len(clients)]
				body.Reset()
				fmt.Fprintf(&body, `{"specversion":"1.0","id":"ev-%d","source":"urn:bench","type":"bench","data":{"t":%d}}`, k, time.Now().UnixNano())
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, c.sink, bytes.NewReader(body.Bytes()))
				req.Header.Set("Content-Type", "application/cloudevents+json")
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				sent.Add(1)
				resp, err := hc.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
				resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent {
					accepted.Add(1)
				} else {
					errs.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	l.measureFrom.Store(start.Add(warmup).UnixNano())
	tick := time.NewTicker(time.Millisecond)
	queued := 0
	var unsent int64
	var receivedAtWarmup int64 = -1
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed >= warmup && receivedAtWarmup < 0 {
			receivedAtWarmup = l.received.Load()
		}
		if elapsed >= warmup+dur {
			break
		}
		for due := int(float64(rate) * elapsed.Seconds()); queued < due; queued++ {
			select {
			case jobs <- queued:
			default:
				unsent++
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	// Let the last events arrive (or be counted lost): poll until a deadline.
	deadline := time.NewTimer(10 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	for waiting := true; waiting && l.received.Load() < accepted.Load(); {
		select {
		case <-deadline.C:
			waiting = false
		case <-poll.C:
		}
	}
	deadline.Stop()
	poll.Stop()
	res.Sent, res.Accepted, res.Errors, res.Unsent = sent.Load(), accepted.Load(), errs.Load(), unsent
	res.Received = l.received.Load()
	res.Lost = max(0, res.Accepted-res.Received)
	res.EventsPerSecond = float64(res.Received-max(receivedAtWarmup, 0)) / dur.Seconds()
}

// intAfter reads the integer following key in data (0: none).
func intAfter(data, key []byte) int64 {
	i := bytes.Index(data, key)
	if i < 0 {
		return 0
	}
	rest := data[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, _ := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v
}

// rss is the resident set of process pid (VmRSS), in bytes.
func rss(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// gc makes the relay collect its garbage (/debug/pprof/heap?gc=1 beside
// /metrics), so that the memory measured is what the connections hold.
func gc(metricsURL string) {
	if metricsURL == "" {
		return
	}
	res, err := http.Get(strings.TrimSuffix(metricsURL, "/metrics") + "/debug/pprof/heap?gc=1")
	if err != nil {
		fmt.Fprintln(os.Stderr, "relayload: no GC before measuring:", err)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// goMemory is the relay's Go heap and stacks in use, from its /metrics.
func goMemory(url string) int64 {
	if url == "" {
		return 0
	}
	res, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	var total float64
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"go_memstats_heap_inuse_bytes ", "go_memstats_stack_inuse_bytes "} {
			if v, ok := strings.CutPrefix(line, name); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				total += f
			}
		}
	}
	return int64(total)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "relayload:", err)
	os.Exit(1)
}

// pause waits d; false when SIGINT or SIGTERM came first.
func pause(d time.Duration) bool {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
