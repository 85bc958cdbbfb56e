// Package webrtcgw is the WebRTC gateway: it runs the CAMARA media
// sessions of device apps as SIP calls, with the media anchored in the
// media plane (package webrtc).
//
// The gateway is a SIP user agent of its own, on a loopback address, in
// front of the B2BUA:
//
//	device → gateway: POST /sessions makes the gateway INVITE the B2BUA
//	                  (From the device's number), which routes the call
//	                  like any other (virtual registrations apply).
//	SIP → device:     the B2BUA routes calls for numbers with a live
//	                  device registration to the gateway
//	                  (routing.DevicesFirst); the gateway answers the
//	                  INVITE as the device tells it through PUT
//	                  /sessions/{id}/status.
//
// So every WebRTC call crosses the B2BUA as an ordinary SIP call with its
// own dialogs, Session-ID and CDR, and the B2BUA needs to know nothing of
// WebRTC. The cost is one loopback SIP hop per call, small beside the
// media's.
//
// Statuses follow package calls: SIP responses on outgoing calls become
// session-status events, the device's status changes on incoming calls
// become 183/180/200, DELETE becomes CANCEL, 603 or BYE.
//
// The SIP side's media is plain RTP unless a peer asks for DTLS-SRTP: a SIP
// offer in UDP/TLS/RTP/SAVP is answered in kind, and a device's call whose
// plain offer is refused with 488 Not Acceptable Here is sent again in a
// new INVITE offering DTLS-SRTP (Config.SecureRetry). The operator may also
// name the peers whose media is DTLS-SRTP by arrangement (a trunk, a
// registration's TAS: media.dtls_srtp_peers, Config.SecureFor): a call
// whose every branch goes to them offers DTLS-SRTP at once; or offer it
// always (media.sip_dtls_srtp).
package webrtcgw
