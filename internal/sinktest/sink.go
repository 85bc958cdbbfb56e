// Package sinktest is a CloudEvents sink for tests: a real HTTPS server on
// 127.0.0.1 (certificate from a test CA) that records every event POSTed to
// it, and can be told to fail, to answer 410 Gone, or to hold requests.
package sinktest

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"callpath/internal/siptest"
)

// Event is one received CloudEvent, as the sink saw it.
type Event struct {
	ID, Type, Source, SpecVersion string
	Time                          string
	Data                          json.RawMessage
	ContentType                   string
	Authorization                 string
	Raw                           []byte
}

// Sink records CloudEvents.
type Sink struct {
	t   testing.TB
	CA  *siptest.TestCA
	URL string // https://127.0.0.1:port/events

	mu     sync.Mutex
	events []Event
	fail   int // answer the next fail requests 503
	gone   bool
	refuse bool
	hold   chan struct{} // non-nil: requests wait until it is closed
	notify chan struct{}
	srv    *http.Server
	posts  int
}

// Start runs a sink with its own test CA.
func Start(t testing.TB) *Sink {
	t.Helper()
	s := &Sink{t: t, CA: siptest.NewTestCA(t), notify: make(chan struct{}, 1)}
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", s.CA.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "https://" + ln.Addr().String() + "/events"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", s.handle)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() {
		s.Release()
		_ = s.srv.Close()
	})
	return s
}

// Addr is the sink's host:port.
func (s *Sink) Addr() string {
	host, port, _ := net.SplitHostPort(s.URL[len("https://") : len(s.URL)-len("/events")])
	return net.JoinHostPort(host, port)
}

func (s *Sink) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.posts++
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.gone:
		w.WriteHeader(http.StatusGone)
		return
	case s.refuse:
		w.WriteHeader(http.StatusBadRequest)
		return
	case s.fail > 0:
		s.fail--
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ce struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Source      string          `json:"source"`
		SpecVersion string          `json:"specversion"`
		Time        string          `json:"time"`
		Data        json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ce); err != nil || ce.ID == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.events = append(s.events, Event{ID: ce.ID, Type: ce.Type, Source: ce.Source, SpecVersion: ce.SpecVersion,
		Time: ce.Time, Data: ce.Data, ContentType: r.Header.Get("Content-Type"),
		Authorization: r.Header.Get("Authorization"), Raw: body})
	w.WriteHeader(http.StatusNoContent)
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// FailNext answers the next n POSTs 503 (Retry-After: 0).
func (s *Sink) FailNext(n int) {
	s.mu.Lock()
	s.fail = n
	s.mu.Unlock()
}

// Gone makes the sink answer 410 Gone from now on.
func (s *Sink) Gone() {
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
}

// Refuse makes the sink answer 400 (refused for good) from now on.
func (s *Sink) Refuse() {
	s.mu.Lock()
	s.refuse = true
	s.mu.Unlock()
}

// Hold makes requests wait until Release.
func (s *Sink) Hold() {
	s.mu.Lock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
	s.mu.Unlock()
}

// Release lets held requests go on.
func (s *Sink) Release() {
	s.mu.Lock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
	s.mu.Unlock()
}

// Events returns what the sink accepted, in order.
func (s *Sink) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Posts is how many POSTs arrived (failed ones included).
func (s *Sink) Posts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts
}

// WaitEvents waits until the sink has accepted n events.
func (s *Sink) WaitEvents(n int, timeout time.Duration) []Event {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if evs := s.Events(); len(evs) >= n {
			return evs
		}
		select {
		case <-s.notify:
		case <-deadline.C:
			s.t.Fatalf("sink: %d events after %s, want %d", len(s.Events()), timeout, n)
			return nil
		}
	}
}

// String describes the sink for logs.
func (s *Sink) String() string { return fmt.Sprintf("sink %s (%d events)", s.URL, len(s.Events())) }
