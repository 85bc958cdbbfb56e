package webrtc

import (
	"errors"

	"callpath/webrtc/sdpaudio"
)

var (
	// ErrBadSDP means an SDP could not be read (SIP: 400; CAMARA:
	// INVALID_ARGUMENT).
	ErrBadSDP = sdpaudio.ErrBadSDP
	// ErrNoCommonCodec means the offer or answer has no audio the media
	// plane can carry to the other leg (SIP: 488 Not Acceptable Here).
	ErrNoCommonCodec = errors.New("no common audio codec")
	// ErrUnsupportedTransport means the SIP leg asks for a media transport
	// this plane does not speak (SDES-SRTP, for one) (SIP: 488).
	ErrUnsupportedTransport = errors.New("unsupported media transport")
	// ErrCallOrder means a Session method was called out of the offer/answer
	// order (a programming error of the caller).
	ErrCallOrder = errors.New("session method called out of order")
	// ErrNoPorts means every RTP port pair of the range is in use.
	ErrNoPorts = errors.New("no free rtp port pair")
	// ErrICETimeout ends a session whose ICE and DTLS did not complete within
	// Config.ConnectTimeout.
	ErrICETimeout = errors.New("ice/dtls did not complete in time")
	// ErrICEFailed ends a session whose ICE connectivity failed.
	ErrICEFailed = errors.New("ice failed")
	// ErrDTLSFailed ends a session whose DTLS handshake failed after ICE
	// connected.
	ErrDTLSFailed = errors.New("dtls failed")
	// ErrMediaTimeout ends a session when a leg that should send RTP sent
	// none for Config.MediaTimeout.
	ErrMediaTimeout = errors.New("no rtp within the media timeout")
	// ErrClosed is the end reason of a session closed by its owner, and
	// what its methods return afterwards.
	ErrClosed = errors.New("media session closed")
)
