// Package calls is the CAMARA call-handling domain: the media session as
// the webrtc-call-handling API shows it (r2.2 MediaSessionInformation),
// its statuses, how SIP responses map to them and which status changes a
// device may ask for. It knows nothing of HTTP, SIP transports or media:
// the CAMARA adapter and the WebRTC gateway use it to agree on meaning,
// and its tables are tested on their own.
//
// The spec names the statuses but defines no transitions; the mapping here
// follows the provider call flows (183 → InProgress, 180 → Ringing, 200 →
// Connected, BYE → Terminated; incoming PUT InProgress/Ringing/Connected →
// 183/180/200) and, for the statuses the flows leave out, the table in
// shared/notes/camara-reference.md §7.
package calls
