package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkFanOut measures the relay's part of one event's way to its app
// once it is committed: building the frame, offering it to the binding's
// session, the writer goroutine and the WebSocket write. A real gorilla
// client reads on loopback in another goroutine; the timer stops when it
// has every event.
func BenchmarkFanOut(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.AckWindow = 1 << 30 })
	c := f.connect("+4790000100", "bench")
	// The benchmark offers events the store does not hold: wait until the
	// session has read its (empty) backlog and takes offers as they come.
	var s *session
	eventually(b, 5*time.Second, "the session caught up", func() bool {
		if s = f.relay.hub.session(c.hello.BindingID); s == nil {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.behind && !s.pumping
	})
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := c.conn.ReadMessage(); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	body := cloudEvent("0123456789abcdef")
	id := "0123456789abcdef"
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		frame := appendEventFrame(make([]byte, 0, eventFrameLen(id, body)), int64(i+1), id, body)
		s.offer(int64(i+1), id, frame, time.Now())
	}
	eventually(b, 30*time.Second, "every event at the client", func() bool { return got.Load() >= int64(b.N) })
	b.StopTimer()
	_ = c.conn.Close()
	<-done
}

// BenchmarkSinkToSocket is the whole way of one event: the sink POST over
// HTTP (keep-alive), the token check, the committed append in SQLite, the
// 204, the offer and the socket write; the client acknowledges every
// event (written in batches).
func BenchmarkSinkToSocket(b *testing.B) {
	f := newFixture(b, nil)
	c := f.connect("+4790000101", "bench")
	var got atomic.Int64
	go func() {
		for {
			_, data, err := c.conn.ReadMessage()
			if err != nil {
				return
			}
			got.Add(1)
			var m EventMessage
			if json.Unmarshal(data, &m) == nil && m.Seq > 0 {
				_ = c.conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"ack","seq":%d}`, m.Seq))
			}
		}
	}()
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req, _ := http.NewRequest(http.MethodPost, c.hello.Sink, bytes.NewReader(cloudEvent(fmt.Sprint("e", i))))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		req.Header.Set("Authorization", "Bearer "+c.hello.SinkCredential.AccessToken)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			b.Fatalf("POST: %d", res.StatusCode)
		}
	}
	eventually(b, 30*time.Second, "every event at the client", func() bool { return got.Load() >= int64(b.N) })
}

// BenchmarkParseSinkEvent: the structured-mode check of one event.
func BenchmarkParseSinkEvent(b *testing.B) {
	h := http.Header{"Content-Type": {"application/cloudevents+json"}}
	body := cloudEvent("0123456789abcdef")
	b.ReportAllocs()
	for range b.N {
		if _, err := ParseSinkEvent(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnect is one app's connect from the WebSocket upgrade to the
// hello: the access token's check, the binding's upsert in SQLite, the
// sink credential's signature. A reconnect storm after a restart is N of
// these; each iteration is a new device of its own subscriber, with a
// token minted outside the timer.
func BenchmarkConnect(b *testing.B) {
	f := newFixture(b, nil)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = f.token(fmt.Sprintf("+47%08d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		conn, res, err := f.dial(tokens[i], "deviceId=bench", nil)
		if err != nil {
			b.Fatalf("dial: %v (%s)", err, describe(res))
		}
		if _, _, err := conn.ReadMessage(); err != nil {
			b.Fatalf("hello: %v", err)
		}
		_ = conn.Close()
	}
}

// BenchmarkConnectParallel is BenchmarkConnect with 64 apps connecting at
// once, as after a restart of the relay.
func BenchmarkConnectParallel(b *testing.B) {
	f := newFixture(b, nil)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = f.token(fmt.Sprintf("+47%08d", i))
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			conn, res, err := f.dial(tokens[next.Add(1)-1], "deviceId=bench", nil)
			if err != nil {
				b.Errorf("dial: %v (%s)", err, describe(res))
				return
			}
			if _, _, err := conn.ReadMessage(); err != nil {
				b.Errorf("hello: %v", err)
			}
			_ = conn.Close()
		}
	})
}
