package routing

// LiveDevices tells whether a number has a device registered through the
// CAMARA webrtc-registration API right now (the WebRTC gateway keeps the
// set; the lookup is on every call's path, so it must not do I/O).
type LiveDevices interface {
	HasDevice(number string) bool
}

// DevicesFirst routes a call for a number with a live device registration
// to the WebRTC gateway, which rings the devices (DESIGN §4: those numbers
// are ours); every other call goes to Next. Virtual registrations apply on
// top, as for any destination: a FORK rings the TAS and the devices
// together.
type DevicesFirst struct {
	Devices LiveDevices
	Gateway string // SIP URI of the WebRTC gateway
	Next    Decider
}

// Decide implements Decider.
func (d DevicesFirst) Decide(call Call) Decision {
	if d.Devices != nil && d.Devices.HasDevice(call.To) {
		return Forward(Target{URI: d.Gateway})
	}
	return d.Next.Decide(call)
}
