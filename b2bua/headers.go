package b2bua

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// allowedMethods is our Allow header: what callpath itself accepts.
const allowedMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, MESSAGE, NOTIFY"

// allowHeader is shared by every message that carries it: sipgo only reads
// headers when it serialises, so an immutable header needs no copy.
var allowHeader = sip.NewHeader("Allow", allowedMethods)

// passedHeaders are the only end-to-end headers copied from one leg to the
// other. Everything else (Via, Contact, Record-Route, Route, User-Agent,
// Server, Call-ID, tags, P-headers with addresses …) stays on its own side:
// that is the topology hiding. A whitelist, not a blacklist, so a header
// nobody thought of does not leak. Compact forms (RFC 3261 §7.3.3) count.
var passedHeaders = newHeaderSet(
	"Content-Type", "c", "Content-Disposition", "Content-Encoding", "e", "Content-Language",
	"Accept", "Accept-Encoding", "Accept-Language",
	"Subject", "s", "Priority", "Privacy", "Event", "o", "Subscription-State", "Info-Package",
)

// passedResponseHeaders are copied from a response on one leg to the
// response we send on the other.
var passedResponseHeaders = newHeaderSet(
	"Content-Type", "c", "Content-Disposition", "Content-Encoding", "e", "Content-Language",
	"Accept", "Accept-Encoding", "Accept-Language", "Unsupported", "Retry-After", "Min-SE",
)

// headerSet holds lower-case header names.
type headerSet map[string]struct{}

func newHeaderSet(names ...string) headerSet {
	set := make(headerSet, len(names))
	for _, n := range names {
		set[strings.ToLower(n)] = struct{}{}
	}
	return set
}

// has reports whether name is in the set, without allocating: the lower-case
// copy lives on the stack and a map lookup by string(bytes) does not copy.
func (set headerSet) has(name string) bool {
	var buf [32]byte
	if len(name) > len(buf) {
		return false // no header we pass has a name this long
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	_, ok := set[string(buf[:len(name)])]
	return ok
}

// copyHeaders appends the headers of src whose names are in set to dst, in
// their order. One pass over src: sipgo's GetHeaders lower-cases and scans
// per name, which cost a fifth of building an outgoing INVITE.
func copyHeaders(dst, src sip.Message, set headerSet) {
	for _, h := range headersOf(src) {
		if set.has(h.Name()) {
			dst.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
}

// headersOf returns all headers of a message, in order.
func headersOf(msg sip.Message) []sip.Header {
	switch m := msg.(type) {
	case *sip.Request:
		return m.Headers()
	case *sip.Response:
		return m.Headers()
	}
	return nil
}

// headersNamed returns the headers called name (any case), in order. sipgo's
// GetHeaders lower-cases every header name of the message on each call, an
// allocation per header on every message.
func headersNamed(msg sip.Message, name string) []sip.Header {
	var out []sip.Header
	for _, h := range headersOf(msg) {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// firstHeader is headersNamed's first match, or nil.
func firstHeader(msg sip.Message, name string) sip.Header {
	for _, h := range headersOf(msg) {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}

// maxForwards returns the request's Max-Forwards, or def when it has none
// (RFC 3261 §16.6 step 3: a missing header is treated as 70).
func maxForwards(req *sip.Request, def int) int {
	if mf := req.MaxForwards(); mf != nil {
		return int(mf.Val())
	}
	return def
}

// unsupportedRequire lists the option tags of Require (and Proxy-Require)
// that callpath does not implement; RFC 3261 §8.2.2.3 says answer 420 with
// them in Unsupported. The one callpath implements is 100rel in Require,
// on an INVITE with an offer (reliable18x.go); everything else, and 100rel
// on an offerless INVITE, is unsupported.
func unsupportedRequire(req *sip.Request) []string {
	var tags []string
	for _, name := range []string{"Require", "Proxy-Require"} {
		for _, h := range headersNamed(req, name) {
			for _, tag := range strings.Split(h.Value(), ",") {
				tag = strings.TrimSpace(tag)
				if tag == "" || (name == "Require" && strings.EqualFold(tag, "100rel") && req.IsInvite() && len(req.Body()) > 0) {
					continue
				}
				tags = append(tags, tag)
			}
		}
	}
	return tags
}

// userOf returns the user part of a URI, the phone number for telephony URIs.
func userOf(u *sip.Uri) string {
	if u == nil {
		return ""
	}
	return u.User
}

// tagOf returns the tag parameter of a From or To header.
func tagOf(params sip.HeaderParams) string {
	tag, _ := params.Get("tag")
	return tag
}

// validateRequest checks the headers every request must carry
// (RFC 3261 §8.1.1); a request missing one gets 400 with the reason.
func validateRequest(req *sip.Request) string {
	switch {
	case req.From() == nil:
		return "Missing From"
	case req.To() == nil:
		return "Missing To"
	case req.CallID() == nil || req.CallID().Value() == "":
		return "Missing Call-ID"
	case req.CSeq() == nil:
		return "Missing CSeq"
	case req.CSeq().MethodName != req.Method && !(req.IsAck() && req.CSeq().MethodName == sip.INVITE):
		return "CSeq method does not match"
	case tagOf(req.From().Params) == "":
		return "Missing From tag"
	}
	return ""
}

// mapFinalResponse turns a final response of an outgoing leg into the code
// the other leg gets. Most codes pass unchanged; the exceptions keep one side's
// business off the other side:
//   - 401/407: the challenge is for credentials of the far network, which the
//     caller cannot have; it becomes 403.
//   - 503: relayed as is it would make the caller's proxy think callpath itself
//     is overloaded and route around it (RFC 3261 §16.7 step 6); it becomes 500.
//   - 3xx: the Contact of a redirect names an address of the far side; a
//     B2BUA does not pass it on, the call is not reachable: 480.
func mapFinalResponse(code int, reason string) (int, string) {
	switch {
	case code == 401 || code == 407:
		return 403, "Forbidden"
	case code == 503:
		return 500, "Server Internal Error"
	case code >= 300 && code < 400:
		return 480, "Temporarily Unavailable"
	}
	return code, reason
}

// branchOf returns the branch of the top Via.
func branchOf(req *sip.Request) string {
	if v := req.Via(); v != nil {
		b, _ := v.Params.Get("branch")
		return b
	}
	return ""
}
