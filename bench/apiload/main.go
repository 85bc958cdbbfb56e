// Command apiload is the load generator of `make bench-api`: C connections
// POST a JSON body to a URL for a duration, as fast as answers come, and it
// prints requests/s and latency percentiles (JSON with -json).
//
//	go run ./bench/apiload -url http://127.0.0.1:8080/x -body '{"a":1}' -c 64 -d 20s [-H 'Authorization: Bearer …']
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

// Result is one run's figures.
type Result struct {
	Requests   int         `json:"requests"`
	Errors     int         `json:"errors"` // transport errors and unexpected status codes
	Seconds    float64     `json:"seconds"`
	RPS        float64     `json:"rps"`
	P50ms      float64     `json:"p50_ms"`
	P99ms      float64     `json:"p99_ms"`
	StatusSeen map[int]int `json:"status"`
}

func main() {
	url := flag.String("url", "", "URL to POST to")
	body := flag.String("body", "{}", "JSON body")
	conns := flag.Int("c", 64, "concurrent connections")
	dur := flag.Duration("d", 20*time.Second, "duration")
	want := flag.Int("expect", 0, "expected status (0: any 2xx)")
	asJSON := flag.Bool("json", false, "print JSON")
	reqFile := flag.String("requests", "", "file of 'token<TAB>body' lines, used in turn (many subscribers); overrides -body")
	var hs headers
	flag.Var(&hs, "H", "header 'Name: value' (repeatable)")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "apiload: -url is required")
		os.Exit(2)
	}
	type variant struct{ token, body string }
	var variants []variant
	if *reqFile != "" {
		data, err := os.ReadFile(*reqFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "apiload:", err)
			os.Exit(2)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			tok, b, ok := strings.Cut(line, "\t")
			if ok {
				variants = append(variants, variant{tok, b})
			}
		}
	}
	var next atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	res := Result{StatusSeen: map[int]int{}}
	deadline := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			errs := 0
			seen := map[int]int{}
			for time.Now().Before(deadline) {
				b := *body
				var tok string
				if len(variants) > 0 {
					v := variants[int(next.Add(1))%len(variants)]
					b, tok = v.body, v.token
				}
				req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewBufferString(b))
				req.Header.Set("Content-Type", "application/json")
				for _, h := range hs {
					k, v, _ := strings.Cut(h, ":")
					req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
				}
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				t0 := time.Now()
				r, err := client.Do(req)
				if err != nil {
					errs++
					continue
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				mine = append(mine, time.Since(t0))
				seen[r.StatusCode]++
				if (*want == 0 && r.StatusCode/100 != 2) || (*want != 0 && r.StatusCode != *want) {
					errs++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.Errors += errs
			for k, v := range seen {
				res.StatusSeen[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Requests = len(lat)
	res.RPS = float64(res.Requests-res.Errors) / res.Seconds
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	res.P50ms, res.P99ms = pct(0.50), pct(0.99)
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Printf("%d requests in %.1f s: %.0f requests/s, p50 %.2f ms, p99 %.2f ms, %d errors, status %v\n",
		res.Requests, res.Seconds, res.RPS, res.P50ms, res.P99ms, res.Errors, res.StatusSeen)
}
