package upstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/sipstack"
)

// FuzzRegistrarResponse feeds the registrar's answers, as sipgo parses
// them, to what the client reads from them: the granted lifetime, 503's
// Retry-After, 423's Min-Expires path and the digest challenge. Whatever the
// registrar sends, nothing panics and no lifetime is negative.
func FuzzRegistrarResponse(f *testing.F) {
	for _, seed := range []string{
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:+4790000001@t>;tag=1\r\nTo: <sip:+4790000001@t>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nContact: <sip:+4790000001@127.0.0.1:5060>;expires=120\r\nContent-Length: 0\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@t>;tag=1\r\nTo: <sip:a@t>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nExpires: -5\r\nContact: <sip:+4790000001@127.0.0.1>;expires=abc\r\nContent-Length: 0\r\n\r\n",
		"SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@t>;tag=1\r\nTo: <sip:a@t>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nRetry-After: 120 (maintenance);duration=60\r\nContent-Length: 0\r\n\r\n",
		"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@t>;tag=1\r\nTo: <sip:a@t>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=SHA-256, stale=true\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	ours := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5060}
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return
		}
		res, ok := msg.(*sip.Response)
		if !ok {
			return
		}
		if d := granted(res, "+4790000001", ours, time.Hour); d < 0 {
			t.Fatalf("negative lifetime %v", d)
		}
		if d := retryAfter(res); d < 0 {
			t.Fatalf("negative Retry-After %v", d)
		}
		// The challenge path of a registration, without the network.
		c, err := New(Config{}, Deps{UA: nopUA{}, Clock: stoppedClock{}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := newRegistration(c, Account{ID: "x", Number: "+4790000001", Domain: "t", Password: "p"}, ours)
		r.expires = time.Hour
		r.mu.Lock()
		switch res.StatusCode {
		case 401, 407:
			r.challengedLocked(res)
		case 423:
			r.tooBriefLocked(res)
		}
		if r.expires < 0 {
			t.Fatalf("negative Expires asked: %v", r.expires)
		}
		if r.challenge != nil {
			req := r.buildLocked()
			_ = req.String()
		}
		r.mu.Unlock()
	})
}

type nopUA struct{}

func (nopUA) Contact(string) sip.Uri { return sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5060} }

func (nopUA) Request(_ context.Context, _ *sip.Request, _ sipstack.Callbacks) (sip.ClientTransaction, error) {
	return nil, errors.New("no network in this fuzz test")
}

// stoppedClock never fires: the fuzz test looks at one step only.
type stoppedClock struct{}

func (stoppedClock) Now() time.Time                        { return time.Unix(0, 0) }
func (stoppedClock) AfterFunc(time.Duration, func()) Timer { return stoppedTimer{} }

type stoppedTimer struct{}

func (stoppedTimer) Stop() bool { return true }
