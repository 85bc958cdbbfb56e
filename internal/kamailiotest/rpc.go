package kamailiotest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// RPCError is an error answer of a Kamailio RPC command.
type RPCError struct {
	Method  string
	Code    int
	Message string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("kamailio rpc %s: %d %s", e.Method, e.Code, e.Message)
}

// RPC runs a Kamailio RPC command (the same commands as kamcmd, e.g.
// "ul.lookup", "location", "+4790000001") over JSON-RPC and returns the
// JSON "result". Parameters are strings or numbers, in the command's order.
// An error answer is a *RPCError.
//
// The transport is jsonrpcs over a FIFO: each call creates a reply FIFO in
// the run directory, writes the request to Kamailio's FIFO and reads one
// JSON document back. Kamailio serves the FIFO with one process, so calls
// are sequential on its side; the answer has no size limit.
func (r *Registrar) RPC(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	n := atomic.AddUint64(&r.rpcSeq, 1)
	// Kamailio refuses reply names with '.', '/' or '\'.
	name := "reply" + strconv.FormatUint(n, 10)
	req, err := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "method": method, "params": params, "id": n, "reply_name": name,
	})
	if err != nil {
		return nil, fmt.Errorf("kamailio rpc %s: %w", method, err)
	}
	if len(req) >= 8000 { // Kamailio reads at most 8 KB per request
		return nil, fmt.Errorf("kamailio rpc %s: request of %d bytes is too big", method, len(req))
	}
	replyPath := filepath.Join(r.dir, name)
	if err := syscall.Mkfifo(replyPath, 0o600); err != nil {
		return nil, fmt.Errorf("kamailio rpc %s: reply fifo: %w", method, err)
	}
	defer os.Remove(replyPath)
	// Read-write: the open does not wait for Kamailio, and there is always a
	// writer, so the read waits for the answer instead of seeing EOF. The end
	// of the answer is the end of the JSON document.
	reply, err := os.OpenFile(replyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("kamailio rpc %s: %w", method, err)
	}
	defer reply.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	if err := reply.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("kamailio rpc %s: %w", method, err)
	}
	// Stop reading when ctx ends or Kamailio exits.
	stop := context.AfterFunc(ctx, func() { _ = reply.SetReadDeadline(time.Now()) })
	defer stop()
	r.mu.Lock()
	exited := r.done
	r.mu.Unlock()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-exited:
			_ = reply.SetReadDeadline(time.Now())
		case <-finished:
		}
	}()

	if err := r.writeRequest(ctx, req); err != nil {
		return nil, fmt.Errorf("kamailio rpc %s: %w", method, err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(reply).Decode(&resp); err != nil {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case r.Exited():
			err = errExited
		}
		return nil, fmt.Errorf("kamailio rpc %s: reading the answer: %w", method, err)
	}
	if resp.Error != nil {
		return nil, &RPCError{Method: method, Code: resp.Error.Code, Message: resp.Error.Message}
	}
	return resp.Result, nil
}

// writeRequest writes one request to Kamailio's FIFO. Opening a FIFO for
// writing waits for its reader: a non-blocking open fails at once (ENXIO)
// when Kamailio is not there, and is retried until ctx ends.
func (r *Registrar) writeRequest(ctx context.Context, req []byte) error {
	for {
		fd, err := syscall.Open(r.rpcFIFO(), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == nil {
			f := os.NewFile(uintptr(fd), r.rpcFIFO())
			// Writers share the FIFO: one request at a time, so that they
			// cannot interleave (a pipe makes only writes of up to 4 KB
			// atomic).
			r.writeMu.Lock()
			_ = f.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, werr := f.Write(req)
			r.writeMu.Unlock()
			cerr := f.Close()
			if werr != nil {
				return werr
			}
			return cerr
		}
		if !errors.Is(err, syscall.ENXIO) && !errors.Is(err, syscall.ENOENT) {
			return err
		}
		if r.Exited() {
			return errExited
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kamailio rpc fifo not served: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Contact is one registered contact, as usrloc reports it.
type Contact struct {
	// AOR is the location key: the To user part (usrloc use_domain=0).
	AOR string
	// URI is the contact address, e.g. "sip:+4790000001@127.0.0.1:5099"
	// (Contact header URI, without header parameters).
	URI string
	// Expires is the validity left when the table was read, in whole
	// seconds, rounded down by Kamailio: right after a REGISTER granting 60 s
	// it is 60 s or 59 s. 0 if Expired or Permanent.
	Expires time.Duration
	// ExpiresAt is the read time plus Expires (second precision).
	ExpiresAt time.Time
	// Expired: the contact has expired but the usrloc timer (every 5 s) has
	// not removed it yet. Lookups ignore it.
	Expired bool
	// Permanent: added without expiry (ul.add with expires 0).
	Permanent bool
	// Q is the q value, -1 when the Contact had none.
	Q         float64
	CallID    string
	CSeq      int
	UserAgent string
	// Received is the source address stored with the contact
	// ("sip:127.0.0.1:5099;transport=udp"), empty unless Options.Received.
	Received string
	// Path is the Path header stored with the contact, empty if none.
	Path string
	// Socket is Kamailio's socket the REGISTER came in on, "udp:127.0.0.1:5070".
	Socket string
	// Instance and RegID are the RFC 5626 +sip.instance and reg-id.
	Instance string
	RegID    int
	// Methods is usrloc's method bit mask from the Allow header (0 = all).
	Methods uint64
	// LastModified is when the contact was last saved (REGISTER time).
	LastModified time.Time
	// Ruid is usrloc's unique id of the contact.
	Ruid string
}

// ulContact is the JSON of one contact in ul.lookup and ul.dump.
type ulContact struct {
	Address      string          `json:"Address"`
	Expires      json.RawMessage `json:"Expires"`
	Q            float64         `json:"Q"`
	CallID       string          `json:"Call-ID"`
	CSeq         int             `json:"CSeq"`
	UserAgent    string          `json:"User-Agent"`
	Received     string          `json:"Received"`
	Path         string          `json:"Path"`
	Socket       string          `json:"Socket"`
	Methods      uint64          `json:"Methods"`
	Ruid         string          `json:"Ruid"`
	Instance     string          `json:"Instance"`
	RegID        int             `json:"Reg-Id"`
	LastModified int64           `json:"Last-Modified"`
}

type ulContacts []struct {
	Contact ulContact `json:"Contact"`
}

func notSet(s string) string {
	if s == "[not set]" {
		return ""
	}
	return s
}

func (c ulContacts) convert(aor string, now time.Time) ([]Contact, error) {
	out := make([]Contact, 0, len(c))
	for _, e := range c {
		u := e.Contact
		ct := Contact{
			AOR: aor, URI: u.Address, Q: u.Q, CallID: u.CallID, CSeq: u.CSeq,
			UserAgent: notSet(u.UserAgent), Received: notSet(u.Received), Path: notSet(u.Path),
			Socket: notSet(u.Socket), Instance: notSet(u.Instance), RegID: u.RegID,
			Methods: u.Methods, Ruid: u.Ruid,
		}
		if u.LastModified > 0 {
			ct.LastModified = time.Unix(u.LastModified, 0)
		}
		var secs int64
		var word string
		switch {
		case json.Unmarshal(u.Expires, &secs) == nil:
			ct.Expires = time.Duration(secs) * time.Second
			ct.ExpiresAt = now.Add(ct.Expires).Truncate(time.Second)
		case json.Unmarshal(u.Expires, &word) == nil:
			switch word {
			case "permanent":
				ct.Permanent = true
			case "expired", "deleted":
				ct.Expired = true
				ct.ExpiresAt = now.Truncate(time.Second)
			default:
				return nil, fmt.Errorf("contact %s: unknown Expires %q", u.Address, word)
			}
		default:
			return nil, fmt.Errorf("contact %s: unknown Expires %s", u.Address, u.Expires)
		}
		out = append(out, ct)
	}
	return out, nil
}

// Contacts returns the contacts registered for aor, which is the location
// key: the user part alone ("+4790000001"), as usrloc use_domain is 0. A
// "sip:user@host" AOR is reduced to its user part. No contacts is an empty
// slice and no error. Expired contacts not yet removed by the usrloc timer
// are included, with Expired set.
func (r *Registrar) Contacts(ctx context.Context, aor string) ([]Contact, error) {
	key := AORKey(aor)
	now := time.Now()
	res, err := r.RPC(ctx, "ul.lookup", "location", key)
	var rerr *RPCError
	if errors.As(err, &rerr) && strings.Contains(rerr.Message, "not found") {
		return []Contact{}, nil
	}
	if err != nil {
		return nil, err
	}
	var v struct {
		AoR      string     `json:"AoR"`
		Contacts ulContacts `json:"Contacts"`
	}
	if err := json.Unmarshal(res, &v); err != nil {
		return nil, fmt.Errorf("ul.lookup %s: %w", key, err)
	}
	return v.Contacts.convert(v.AoR, now)
}

// AllContacts returns every contact in the location table by AOR key. It
// reads the whole table with ul.dump (about 500 bytes per contact: 5 MB for
// 10,000 AORs, under a second); for a count use RegisteredUsers.
func (r *Registrar) AllContacts(ctx context.Context) (map[string][]Contact, error) {
	now := time.Now()
	res, err := r.RPC(ctx, "ul.dump")
	if err != nil {
		return nil, err
	}
	var v struct {
		Domains []struct {
			Domain struct {
				Domain string `json:"Domain"`
				AoRs   []struct {
					Info struct {
						AoR      string     `json:"AoR"`
						Contacts ulContacts `json:"Contacts"`
					} `json:"Info"`
				} `json:"AoRs"`
			} `json:"Domain"`
		} `json:"Domains"`
	}
	if err := json.Unmarshal(res, &v); err != nil {
		return nil, fmt.Errorf("ul.dump: %w", err)
	}
	out := map[string][]Contact{}
	for _, d := range v.Domains {
		if d.Domain.Domain != "location" {
			continue
		}
		for _, a := range d.Domain.AoRs {
			cs, err := a.Info.Contacts.convert(a.Info.AoR, now)
			if err != nil {
				return nil, err
			}
			out[a.Info.AoR] = append(out[a.Info.AoR], cs...)
		}
	}
	return out, nil
}

// Statistics returns Kamailio statistics (kamcmd stats.get_statistics) by
// their "group:name" key, e.g. "usrloc:registered_users". Ask for a name
// ("registered_users"), a whole group ("usrloc:") or "all"; Kamailio finds
// nothing for "group:name".
func (r *Registrar) Statistics(ctx context.Context, names ...string) (map[string]int64, error) {
	params := make([]any, len(names))
	for i, n := range names {
		params[i] = n
	}
	res, err := r.RPC(ctx, "stats.get_statistics", params...)
	if err != nil {
		return nil, err
	}
	var lines []string
	if err := json.Unmarshal(res, &lines); err != nil {
		return nil, fmt.Errorf("stats.get_statistics: %w", err)
	}
	out := make(map[string]int64, len(lines))
	for _, l := range lines {
		name, val, ok := strings.Cut(l, " = ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			// Counters are unsigned longs printed as such.
			u, uerr := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
			if uerr != nil {
				return nil, fmt.Errorf("statistic %q: %w", l, err)
			}
			n = int64(u)
		}
		out[strings.TrimSpace(name)] = n
	}
	return out, nil
}

// RegisteredUsers is the number of AORs with at least one contact
// (statistic usrloc:registered_users): one cheap RPC, for load tests.
// Expired contacts count until the usrloc timer removes them (every 5 s).
func (r *Registrar) RegisteredUsers(ctx context.Context) (int, error) {
	return r.statistic(ctx, "usrloc:", "usrloc:registered_users")
}

// ContactCount is the number of contacts in the location table (statistic
// usrloc:location_contacts), expired ones until the timer removes them.
func (r *Registrar) ContactCount(ctx context.Context) (int, error) {
	return r.statistic(ctx, "usrloc:", "usrloc:location_contacts")
}

func (r *Registrar) statistic(ctx context.Context, group, name string) (int, error) {
	st, err := r.Statistics(ctx, group)
	if err != nil {
		return 0, err
	}
	v, ok := st[name]
	if !ok {
		return 0, fmt.Errorf("statistic %s not reported", name)
	}
	return int(v), nil
}

// AORKey is the location key Kamailio uses for an address of record: the
// user part ("sip:+4790000001@127.0.0.1" and "+4790000001" give
// "+4790000001"), as usrloc use_domain is 0.
func AORKey(aor string) string {
	s := aor
	if i := strings.IndexByte(s, ':'); i >= 0 && (strings.HasPrefix(s, "sip:") || strings.HasPrefix(s, "sips:")) {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexAny(s, ";?>"); i >= 0 {
		s = s[:i]
	}
	return s
}
