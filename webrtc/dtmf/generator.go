package dtmf

// Packets returns the payloads a sender emits for one digit (RFC 4733
// §2.5.1): a first packet, an update every step clock units while the
// tone lasts, and the final duration three times with the end bit.
// All of them go out with the RTP timestamp of the event's start; the first
// carries the marker bit.
func Packets(code uint8, duration, step uint16, volume uint8) []Event {
	if step == 0 {
		step = 1
	}
	var out []Event
	for d := step; d < duration; d += step {
		out = append(out, Event{Code: code, Volume: volume, Duration: d})
	}
	for range 3 {
		out = append(out, Event{Code: code, End: true, Volume: volume, Duration: duration})
	}
	return out
}
