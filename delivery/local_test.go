package delivery

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"callpath/internal/siptest"
)

// relaySinks stands for the embedded relay: its sinks live under
// /relay/v1/sinks/ on port 1 of loopback, where nothing listens.
type relaySinks struct {
	mu   sync.Mutex
	got  []string // bodies, in order
	auth []string
}

func (r *relaySinks) Handler(u *url.URL) (http.Handler, bool) {
	if u.Host != "127.0.0.1:1" || !strings.HasPrefix(u.Path, "/relay/v1/sinks/") {
		return nil, false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, string(body))
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}), true
}

// Events for a local sink are handed to it in-process, in order, with
// their bearer token, although its plain-http loopback URL would be refused
// on the network; the same URL shape elsewhere is still refused.
func TestLocalSinksAreServedInProcess(t *testing.T) {
	ca := siptest.NewTestCA(t)
	db, _ := newDB(t)
	local := &relaySinks{}
	opts, _ := testOptions(ca)
	opts.Local = local
	d, _ := start(t, db, opts)
	sink := "http://127.0.0.1:1/relay/v1/sinks/b1"
	enqueue(t, db, event("e1", "sub", sink, "tok"), event("e2", "sub", sink, "tok"),
		event("x1", "other", "http://127.0.0.1:2/relay/v1/sinks/b1", "tok"))
	d.Notify()
	waitFor(t, 10*time.Second, "the local sink's two events and the other refused", func() bool {
		live, dead := depth(t, db)
		return live == 0 && dead == 1
	})
	local.mu.Lock()
	defer local.mu.Unlock()
	if len(local.got) != 2 || !strings.Contains(local.got[0], `"e1"`) || !strings.Contains(local.got[1], `"e2"`) || local.auth[0] != "Bearer tok" {
		t.Fatalf("local sink got %v %v", local.got, local.auth)
	}
}
