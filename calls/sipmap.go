package calls

// ProvisionalStatus maps a provisional SIP response on an outgoing call to
// the status the device is told; false for 100 Trying (hop by hop, it says
// nothing about the callee) and anything that is not 1xx.
func ProvisionalStatus(code int) (Status, bool) {
	switch {
	case code == 180:
		return Ringing, true
	case code == 182:
		return Waiting, true
	case code == 183:
		return InProgress, true
	case code > 100 && code < 200:
		return Proceeding, true // 181 forwarded, 199 early dialog terminated, others
	}
	return "", false
}

// FailureStatus maps the final failure of an outgoing call to its terminal
// status; alerted says whether the callee rang (a 180 came) first, which
// tells "did not answer" from "could not be reached".
func FailureStatus(code int, alerted bool) Status {
	switch code {
	case 486, 600:
		return Busy
	case 603:
		return Declined
	case 487:
		return SessionCancelled
	case 408, 480:
		if alerted {
			return NoAnswer
		}
		return NotReachable
	case 404, 410, 484, 503, 604:
		if !alerted {
			return NotReachable
		}
	}
	return Failed
}

// DeclineCode is the SIP response an incoming call gets when the device
// deletes it before answering: 603 Decline, the callee's own refusal
// (RFC 3261 §21.6.2), which the caller's network does not retry elsewhere.
const DeclineCode = 603

// FailureCode is the SIP response an incoming call gets when it ends in
// status s before it was answered (the gateway's side of FailureStatus).
func FailureCode(s Status) (int, string) {
	switch s {
	case Declined:
		return DeclineCode, "Decline"
	case Busy:
		return 486, "Busy Here"
	case NoAnswer:
		return 480, "Temporarily Unavailable"
	case NotReachable:
		return 480, "Temporarily Unavailable"
	case SessionCancelled:
		return 487, "Request Terminated"
	}
	return 500, "Server Internal Error"
}
