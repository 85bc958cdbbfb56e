package sdpaudio

// Direction is a media stream's direction attribute (RFC 3264 §5.1, §6.1)
// from the point of view of the side that wrote the SDP.
type Direction uint8

// The four directions; SendRecv is the default when none is given.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

// String returns the SDP attribute name.
func (d Direction) String() string {
	switch d {
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	default:
		return "sendrecv"
	}
}

// ParseDirection reads an SDP direction attribute name.
func ParseDirection(s string) (Direction, bool) {
	switch s {
	case "sendrecv":
		return SendRecv, true
	case "sendonly":
		return SendOnly, true
	case "recvonly":
		return RecvOnly, true
	case "inactive":
		return Inactive, true
	}
	return SendRecv, false
}

// Sends tells whether the side that wrote d sends media.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives tells whether the side that wrote d receives media.
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// Reverse is the direction an answerer writes to agree with an offer of d
// (RFC 3264 §6.1: sendonly is answered recvonly and the other way round).
func (d Direction) Reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	default:
		return d
	}
}

// Combine is the direction a side may use when it wants want and the other
// side allows other (written from the other side's point of view): the
// intersection of what both agree to.
func Combine(want, other Direction) Direction {
	send := want.Sends() && other.Receives()
	recv := want.Receives() && other.Sends()
	switch {
	case send && recv:
		return SendRecv
	case send:
		return SendOnly
	case recv:
		return RecvOnly
	default:
		return Inactive
	}
}
