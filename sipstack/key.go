package sipstack

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// magicCookie starts every RFC 3261 branch (§8.1.1.7).
const magicCookie = "z9hG4bK"

var errNoKey = errors.New("request has no Via or CSeq to match a transaction by")

// serverKey identifies the server transaction of a request (RFC 3261
// §17.2.3): the top Via's branch and sent-by, and the method, with ACK
// matching its INVITE. method overrides the request's own (CANCEL looks up
// the INVITE it cancels). Requests from RFC 2543 peers, whose branch lacks
// the magic cookie, are matched by Call-ID, From tag, CSeq number and
// sent-by instead.
func serverKey(req *sip.Request, method sip.RequestMethod) (string, error) {
	via, cseq := req.Via(), req.CSeq()
	if via == nil || cseq == nil {
		return "", errNoKey
	}
	if method == sip.ACK {
		method = sip.INVITE
	}
	var b strings.Builder
	branch, _ := via.Params.Get("branch")
	if strings.HasPrefix(branch, magicCookie) {
		b.Grow(len(branch) + len(via.Host) + len(method) + 10)
		b.WriteString(branch)
	} else {
		callID, from := req.CallID(), req.From()
		if callID == nil || from == nil {
			return "", errNoKey
		}
		tag, _ := from.Params.Get("tag")
		b.WriteString(callID.Value())
		b.WriteByte('|')
		b.WriteString(tag)
		b.WriteByte('|')
		b.WriteString(strconv.FormatUint(uint64(cseq.SeqNo), 10))
	}
	b.WriteByte('|')
	b.WriteString(via.Host)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(via.Port))
	b.WriteByte('|')
	b.WriteString(string(method))
	return b.String(), nil
}

// clientKey identifies the client transaction a response belongs to (RFC
// 3261 §17.1.3): the branch we put in the top Via and the CSeq method. The
// branches are ours and unique, so sent-by is not needed.
func clientKey(branch string, method sip.RequestMethod) string {
	return branch + "|" + string(method)
}

func responseKey(res *sip.Response) (string, bool) {
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil {
		return "", false
	}
	branch, ok := via.Params.Get("branch")
	if !ok || branch == "" {
		return "", false
	}
	method := cseq.MethodName
	if method == sip.ACK {
		method = sip.INVITE
	}
	return clientKey(branch, method), true
}
