package delivery

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is the wait before the next try after the attempt-th failed one
// (attempt ≥ 1): base·2^(attempt-1), capped at maxDelay, then jittered by
// ±20 %: multiplied by 0.8 + 0.4·r, r in [0, 1). The result can exceed
// maxDelay by up to 20 %; with ±20 % (rather than full jitter) a retry is
// never much earlier than planned, yet sinks that failed together drift
// apart.
func backoff(attempt int, base, maxDelay time.Duration, r float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := maxDelay
	if exp := attempt - 1; exp < 62 {
		if f := float64(base) * math.Exp2(float64(exp)); f < float64(maxDelay) {
			d = time.Duration(f)
		}
	}
	if r < 0 {
		r = 0
	} else if r >= 1 {
		r = math.Nextafter(1, 0)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*r))
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// ok is false when there is none or it does not parse; a date in the past
// gives 0.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// retryDelay combines the backoff with the sink's Retry-After, which is
// honoured as a minimum up to maxDelay: a sink cannot park its queue for
// longer than the backoff cap (the event would otherwise risk MaxAge
// without ever being tried again).
func retryDelay(attempt int, base, maxDelay time.Duration, r float64, after time.Duration, hasAfter bool) time.Duration {
	d := backoff(attempt, base, maxDelay, r)
	if hasAfter {
		d = max(d, min(after, maxDelay))
	}
	return d
}
