package delivery

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	base, maxD := time.Second, 5*time.Minute
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0.5, time.Second},
		{1, 0, 800 * time.Millisecond},
		{2, 0.5, 2 * time.Second},
		{3, 0.5, 4 * time.Second},
		{9, 0.5, 256 * time.Second},
		{10, 0.5, maxD}, // 512 s capped
		{10, 0, 4 * time.Minute},
		{1000, 0.5, maxD},
		{0, 0.5, time.Second},
		{1, -3, 800 * time.Millisecond},
	} {
		if got := backoff(tc.attempt, base, maxD, tc.r); got != tc.want {
			t.Errorf("backoff(%d, r=%v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
	// Bounds: within ±20 % of the capped exponential for any r.
	for attempt := 1; attempt <= 64; attempt++ {
		nominal := min(base<<min(attempt-1, 20), maxD)
		for _, r := range []float64{0, 0.25, 0.999999, 1, 2} {
			got := backoff(attempt, base, maxD, r)
			lo, hi := time.Duration(float64(nominal)*0.8), time.Duration(float64(nominal)*1.2)
			if got < lo || got > hi {
				t.Errorf("backoff(%d, %v) = %v, outside [%v, %v]", attempt, r, got, lo, hi)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Sun, 22 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sun, 22 Nov 2026 11:00:00 GMT", 0, true},
	} {
		got, ok := retryAfter(h(tc.v), now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	if got, ok := retryAfter(h("99999999999999999"), now); !ok || got <= 0 {
		t.Errorf("huge Retry-After = %v, %v", got, ok)
	}
}

// Retry-After is a minimum, up to the cap.
func TestRetryDelay(t *testing.T) {
	base, maxD := time.Second, 5*time.Minute
	if got := retryDelay(1, base, maxD, 0.5, 30*time.Second, true); got != 30*time.Second {
		t.Errorf("Retry-After 30s: %v", got)
	}
	if got := retryDelay(3, base, maxD, 0.5, 0, true); got != 4*time.Second {
		t.Errorf("Retry-After 0: %v", got)
	}
	if got := retryDelay(1, base, maxD, 0.5, time.Hour, true); got != maxD {
		t.Errorf("Retry-After 1h: %v, want the cap", got)
	}
	if got := retryDelay(2, base, maxD, 0.5, 0, false); got != 2*time.Second {
		t.Errorf("no Retry-After: %v", got)
	}
}
