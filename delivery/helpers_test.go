package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"callpath/internal/siptest"
	"callpath/store"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func quietLogger() (*logrus.Entry, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l), hook
}

// openDB opens (or reopens) the database at path and closes it at cleanup
// unless the test closes it first.
func openDB(t *testing.T, path string) *store.DB {
	t.Helper()
	log, _ := quietLogger()
	db, err := store.Open(testContext(t), path, store.Options{Logger: log})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = db.Close() }) })
	return db
}

func newDB(t *testing.T) (*store.DB, string) {
	path := filepath.Join(t.TempDir(), "callpath.db")
	return openDB(t, path), path
}

// event makes an outbox event whose body is a CloudEvent with id.
func event(id, sub, sink, token string) store.OutboxEvent {
	body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"https://callpath.test","type":"org.camaraproject.webrtc-events.v0.session-status","time":"2026-11-22T12:00:00Z","datacontenttype":"application/json","data":{"subscriptionId":%q,"mediaSessionId":"m1","status":"Connected"}}`, id, sub)
	return store.OutboxEvent{EventID: id, SubscriptionID: sub, Sink: sink, SinkToken: token,
		Type: "org.camaraproject.webrtc-events.v0.session-status", Body: []byte(body)}
}

func enqueue(t *testing.T, db *store.DB, evs ...store.OutboxEvent) {
	t.Helper()
	if err := db.Update(testContext(t), func(tx *store.Tx) error {
		for _, e := range evs {
			if err := tx.Enqueue(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

func events(sub, sink, token string, idList []string) []store.OutboxEvent {
	out := make([]store.OutboxEvent, len(idList))
	for i, id := range idList {
		out[i] = event(id, sub, sink, token)
	}
	return out
}

// received is one request a test sink got.
type received struct {
	id, contentType, auth, correlator string
	body                              []byte
}

// testSink is a real HTTP(S) server recording what it receives. respond
// writes the answer (default 204); n counts the requests before this one.
type testSink struct {
	srv     *httptest.Server
	release chan struct{} // closed at cleanup: blocking handlers return

	mu       sync.Mutex
	arrivals []received
	accepted []string // ids answered with 2xx, in order
	respond  func(w http.ResponseWriter, r *http.Request, n int, id string)
}

func (s *testSink) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ce struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &ce)
	s.mu.Lock()
	n := len(s.arrivals)
	s.arrivals = append(s.arrivals, received{id: ce.ID, contentType: r.Header.Get("Content-Type"),
		auth: r.Header.Get("Authorization"), correlator: r.Header.Get("x-correlator"), body: body})
	respond := s.respond
	s.mu.Unlock()
	rec := httptest.NewRecorder()
	if respond != nil {
		respond(rec, r, n, ce.ID)
	} else {
		rec.WriteHeader(http.StatusNoContent)
	}
	if r.Context().Err() != nil {
		// The client gave up: nothing was accepted, and no answer (not even
		// the implicit 200 of a handler that returns) goes out.
		panic(http.ErrAbortHandler)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	if rec.Code >= 200 && rec.Code < 300 {
		s.mu.Lock()
		s.accepted = append(s.accepted, ce.ID)
		s.mu.Unlock()
	}
}

func (s *testSink) setRespond(f func(w http.ResponseWriter, r *http.Request, n int, id string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

func (s *testSink) snapshot() (arrivals []received, accepted []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.arrivals...), append([]string(nil), s.accepted...)
}

func (s *testSink) URL() string { return s.srv.URL + "/events?k=v" }

func newSink(t *testing.T, ca *siptest.TestCA, respond func(w http.ResponseWriter, r *http.Request, n int, id string)) *testSink {
	t.Helper()
	s := &testSink{respond: respond, release: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake failures are expected in some tests
	if ca != nil {
		s.srv.TLS = ca.ServerConfig()
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

// blockUntilGone holds the request until the client gives up or the test
// ends.
func (s *testSink) blockUntilGone(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.release:
	}
}

type recMetrics struct {
	mu  sync.Mutex
	got map[string]int
}

func (m *recMetrics) Attempt(outcome string, attempts int, age time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got == nil {
		m.got = map[string]int{}
	}
	m.got[outcome]++
}

func (m *recMetrics) count(outcome string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.got[outcome]
}

// testOptions: fast retries, the test CA, loopback allowed.
func testOptions(ca *siptest.TestCA) (Options, *logtest.Hook) {
	log, hook := quietLogger()
	o := Options{
		Policy:       SinkPolicy{AllowCIDRs: loopback},
		Timeout:      5 * time.Second,
		BaseDelay:    5 * time.Millisecond,
		MaxDelay:     50 * time.Millisecond,
		DrainTimeout: 100 * time.Millisecond,
		Logger:       log,
	}
	if ca != nil {
		o.RootCAs = ca.Pool
	}
	return o, hook
}

// start runs a deliverer until the returned stop is called (or the test
// ends); stop waits for Run to return.
func start(t *testing.T, st Store, opts Options) (*Deliverer, func()) {
	t.Helper()
	d := New(st, opts)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("deliverer did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

func depth(t *testing.T, db *store.DB) (live, dead int) {
	t.Helper()
	live, dead, err := db.OutboxDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return live, dead
}

func deadLetters(t *testing.T, db *store.DB) []store.OutboxEvent {
	t.Helper()
	evs, err := db.DeadLetters(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// noSecretsLogged fails if a log entry mentions one of the secrets.
func noSecretsLogged(t *testing.T, hook *logtest.Hook, secrets ...string) {
	t.Helper()
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log entry contains a secret %q: %s", s, line)
			}
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
