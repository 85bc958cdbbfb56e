// Package relay is the WebSocket notification relay: it gives an app that
// cannot run an HTTP server (a browser page, a phone app) a CloudEvents sink
// of its own. The app opens a WebSocket, gets a sink URL and a sink
// credential in the hello message, puts them in its webrtc-events
// subscription, and every CloudEvent POSTed to that sink is pushed down its
// socket. It runs embedded in callpath (operator) or as its own process
// (`callpath relay`, an app provider).
//
// # Bindings
//
// A binding is one app instance: the owner named by its access token (the
// phone_number claim, else "sub:" + the subject) and the device id it gives
// on connect. Connecting again with the same owner and device id reaches the
// same binding, its sink and its queue; so does a relay-issued token (the
// hello's relayToken), which lets an app reconnect after its access token
// has expired. One socket is active per binding: a second connection takes
// over and the first is closed with CloseReplaced.
//
// # Durability
//
// An event POSTed to a sink is answered 204 only once it is committed to the
// binding's queue in the store. It stays there until the app acknowledges
// it, by seq (that event and all before it) or by id (that event only). A
// reconnecting app gets every unacknowledged event again, in seq order; an
// acknowledgement lost in a crash means an event comes twice, which the app
// tells by its id. A queue is bounded: by relay.queue.max_events (a full
// queue answers 429, or drops its oldest event, as configured) and by
// relay.queue.max_age (older events are dropped); the app is told how many
// it lost with an "expired" message.
//
// # Protocol, version 1 (subprotocol "callpath.relay.v1")
//
// Connect: GET /relay/v1/connect?deviceId=ID[&after=SEQ] as a WebSocket, with
// the token in "Authorization: Bearer …" or, from browsers, which cannot set
// headers on a WebSocket, as a second subprotocol "bearer.TOKEN" beside
// "callpath.relay.v1". after acknowledges every event up to SEQ before the
// backlog is sent. Every message is one JSON text frame.
//
// Relay to app:
//
//	{"type":"hello","v":1,"bindingId":…,"deviceId":…,"sink":"https://…/relay/v1/sinks/ID",
//	 "sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":…,"accessTokenExpiresUtc":…,"accessTokenType":"bearer"},
//	 "relayToken":…,"relayTokenExpiresUtc":…,"ackWindow":N,"maxMessageBytes":N}
//	{"type":"event","seq":N,"id":"CloudEvent id","event":{…the CloudEvent…}}
//	{"type":"expired","count":N}     N events were dropped before the app got them
//	{"type":"pong"}                  answer to the app's ping
//
// App to relay:
//
//	{"type":"ack","seq":N}           events up to seq N are done
//	{"type":"ack","id":"…"}          that event is done
//	{"type":"ping"}                  liveness check (browsers cannot send WebSocket pings)
//	{"type":"unbind"}                delete the binding: its sink answers 410 from now on
//
// At most ackWindow events are unacknowledged on a socket; the rest wait in
// the store. The relay pings every relay.ping_interval and closes a socket
// that has sent nothing (pongs included) for ping_interval + pong_timeout.
// Close codes: 1000 after unbind, 1001 on shutdown, 1003 for a binary frame,
// 1008 for a malformed message, 1009 for one over maxMessageBytes, 1011 on
// an internal error, CloseReplaced (4001) when another connection takes the
// binding, CloseBindingGone (4002) when the binding expired.
package relay
