// Package webrtc is callpath's media plane: it anchors the media of a call
// between a WebRTC leg (a browser or app: ICE-lite on one UDP port shared by
// every call, DTLS-SRTP, RTCP-mux; pion/webrtc) and a plain RTP/AVP leg
// toward a SIP peer (a UDP port pair from a configured range).
//
// When both legs agree on PCMU or PCMA the packets are relayed: only SSRC,
// sequence number, timestamp and payload type change, with no allocation
// per packet. When they settled on different G.711 laws (a PCMU-only
// browser and an A-law TAS; a fork's 183 in one law and another fork's 200
// in the other; a re-INVITE changing it) the relay converts each payload
// in place through a 256-entry table. When the browser speaks Opus and the
// SIP peer G.711, the
// plane transcodes through libopus at 8 kHz; only builds with the tag
// "opus" can, and the others never offer Opus. RFC 4733 telephone-events
// cross in both directions, re-timed to the receiving leg's clock.
//
// The SIP and CAMARA layers drive one Session per call with SDP strings
// and never see pion:
//
//	browser calls SIP:  OfferFromWebRTC(browser offer) -> SIP offer
//	                    AnswerFromSIP(SIP answer)      -> WebRTC answer
//	SIP calls browser:  OfferFromSIP(SIP offer)        -> WebRTC offer
//	                    AnswerFromWebRTC(answer)       -> SIP answer
//
// A plain offer the SIP side refuses with 488 can be made again over
// DTLS-SRTP with SecureSIPOffer (a TAS asking for "WebRTC style" media).
//
// Errors are typed (ErrBadSDP → 400, ErrNoCommonCodec → 488) so callers can
// map them once. A session ends by Close, or by itself when ICE/DTLS do not
// complete in time or no RTP arrives for the media timeout; Done, Err and
// the OnEnd callback report it.
package webrtc
