package b2bua

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/metrics"
	"callpath/routing"
)

// recordingTx is a server transaction that records responses instead of
// sending them: the fuzz target drives the handlers directly, without
// sockets, so that millions of inputs run.
type recordingTx struct {
	mu        sync.Mutex
	responses []*sip.Response
	done      chan struct{}
}

func newRecordingTx() *recordingTx { return &recordingTx{done: make(chan struct{})} }

func (tx *recordingTx) Respond(res *sip.Response) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	tx.responses = append(tx.responses, res)
	return nil
}
func (tx *recordingTx) Acks() <-chan *sip.Request          { return nil }
func (tx *recordingTx) OnCancel(sip.FnTxCancel) bool       { return true }
func (tx *recordingTx) Terminate()                         {}
func (tx *recordingTx) OnTerminate(sip.FnTxTerminate) bool { return true }
func (tx *recordingTx) Done() <-chan struct{}              { return tx.done }
func (tx *recordingTx) Err() error                         { return errors.New("recording") }

// fuzzServer is a B2BUA whose routing rejects every call, so that no input
// opens a network leg; listeners are synthetic.
func fuzzServer(t testing.TB) *Server {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	s, err := New(Config{UserAgent: "callpath", MaxForwards: 70, NoAnswerTimeout: time.Second,
		T1: 500 * time.Millisecond, T2: 4 * time.Second, T4: 5 * time.Second, RetryAfter: time.Second},
		Deps{Planner: &routing.Breakout{Destinations: routing.NewStaticTable(nil, "")}, Metrics: metrics.New(), Log: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	s.listeners = &listenerSet{host: "127.0.0.1", ports: map[string]int{"udp": 5060, "tcp": 5060}, addrs: map[string]string{}}
	t.Cleanup(func() { _ = s.stack.Close() })
	return s
}

// FuzzHandleRequest feeds parsed SIP requests to the B2BUA's handlers:
// whatever parses must never crash a handler, every request but ACK gets
// exactly one final response, and that response answers the request
// (same Call-ID and CSeq) with a valid status code.
func FuzzHandleRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/sip/*.sip")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	s := fuzzServer(f)
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return // sipgo drops what it cannot parse
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		req.SetTransport("UDP")
		req.SetSource("127.0.0.1:5090")
		tx := newRecordingTx()
		s.dispatch(req, tx)
		if req.IsAck() {
			if len(tx.responses) != 0 {
				t.Fatalf("ACK answered with %d", tx.responses[0].StatusCode)
			}
			return
		}
		finals := 0
		for _, res := range tx.responses {
			if res.StatusCode < 100 || res.StatusCode > 699 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if res.StatusCode >= 200 {
				finals++
			}
			if h := req.CallID(); h != nil && (res.CallID() == nil || res.CallID().Value() != h.Value()) {
				t.Fatalf("response Call-ID does not match the request")
			}
		}
		if finals != 1 {
			t.Fatalf("%s got %d final responses, want 1", req.Method, finals)
		}
		last := tx.responses[len(tx.responses)-1]
		if cs := req.CSeq(); cs != nil && (last.CSeq() == nil || last.CSeq().SeqNo != cs.SeqNo) {
			t.Fatalf("final response CSeq does not match the request")
		}
	})
}
