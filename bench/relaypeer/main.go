// Command relaypeer is the peer of `make bench-relay` (DESIGN §6): a bare
// gorilla/websocket server with one goroutine per connection, as a relay
// written in the obvious way looks, with nothing callpath's relay adds (no
// tokens, no store, no acknowledgements, no flow control). A WebSocket at
// /ws?id=N is connection N; an event POSTed to /sinks/N is written to it, in
// the same frame shape as callpath's, and answered 204.
//
//	go run ./bench/relaypeer -listen 127.0.0.1:26190
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // /debug/pprof/heap?gc=1: the load process asks for a GC before measuring memory
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type conn struct {
	ws *websocket.Conn
	mu sync.Mutex // gorilla allows one writer at a time
}

type server struct {
	upgrader websocket.Upgrader
	mu       sync.RWMutex
	conns    map[string]*conn
	seq      atomic.Int64
}

func main() {
	listen := flag.String("listen", "127.0.0.1:26190", "address")
	flag.Parse()
	s := &server{conns: map[string]*conn{}, upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.ws)
	mux.HandleFunc("POST /sinks/{id}", s.sink)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("/debug/pprof/", http.DefaultServeMux)
	if err := http.ListenAndServe(*listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, "relaypeer:", err)
		os.Exit(1)
	}
}

// ws keeps connection id open; its handler goroutine reads until the end.
func (s *server) ws(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{ws: ws}
	s.mu.Lock()
	s.conns[id] = c
	s.mu.Unlock()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello"}`))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break
		}
	}
	s.mu.Lock()
	if s.conns[id] == c {
		delete(s.conns, id)
	}
	s.mu.Unlock()
	_ = ws.Close()
}

// sink writes the event to its connection.
func (s *server) sink(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.RLock()
	c := s.conns[r.PathValue("id")]
	s.mu.RUnlock()
	if c == nil {
		w.WriteHeader(http.StatusGone)
		return
	}
	seq := s.seq.Add(1)
	frame := append([]byte(`{"type":"event","seq":`+strconv.FormatInt(seq, 10)+`,"id":"x","event":`), body...)
	frame = append(frame, '}')
	c.mu.Lock()
	err = c.ws.WriteMessage(websocket.TextMessage, frame)
	c.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusGone)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
