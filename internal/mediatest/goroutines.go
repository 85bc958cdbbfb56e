package mediatest

import (
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// CheckGoroutines fails the test if, at its end (after the cleanups
// registered later, which run first), more goroutines run than at its
// start, once they have had 5 s to finish.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		poll := time.NewTicker(20 * time.Millisecond)
		defer poll.Stop()
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				var b strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
				t.Errorf("%d goroutines at the end, %d at the start:\n%s", runtime.NumGoroutine(), before, b.String())
				return
			}
			<-poll.C
		}
	})
}
