package dtmf

// Detector turns the packets of a telephone-event stream into digits: an
// event is repeated in many packets (updates, then three end packets,
// RFC 4733 §2.5.1), all with the RTP timestamp of its start, and it is
// reported once.
type Detector struct {
	current  uint32 // RTP timestamp of the event in progress
	active   bool
	reported bool
	last     Event
}

// Observe takes one packet's RTP timestamp and event and tells whether a
// digit just completed: at its first end packet or, when the end packets
// were all lost, when the next event starts (then the previous one is
// returned).
func (d *Detector) Observe(timestamp uint32, e Event) (done Event, ok bool) {
	if !d.active || timestamp != d.current {
		var previous Event
		unreported := d.active && !d.reported
		if unreported {
			previous = d.last
		}
		d.current, d.active, d.reported = timestamp, true, false
		d.last = e
		if e.End {
			d.reported = true
			if unreported {
				// Rare: two events ended at once; the earlier is kept.
				return previous, true
			}
			return e, true
		}
		return previous, unreported
	}
	if e.Duration > d.last.Duration || e.End {
		d.last = e
	}
	if e.End && !d.reported {
		d.reported = true
		return d.last, true
	}
	return Event{}, false
}
