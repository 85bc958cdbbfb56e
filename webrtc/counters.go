package webrtc

// Packet paths count locally and hand the counts to Metrics in batches:
// a Prometheus label lookup per packet would cost more than the relay.
const counterBatch = 64

// packetCounter batches one leg and direction's packet and byte counts.
type packetCounter struct {
	m              Metrics
	leg, direction string
	packets, bytes int
}

func newPacketCounter(m Metrics, leg, direction string) *packetCounter {
	return &packetCounter{m: m, leg: leg, direction: direction}
}

func (c *packetCounter) add(bytes int) {
	c.packets++
	c.bytes += bytes
	if c.packets >= counterBatch {
		c.flush()
	}
}

func (c *packetCounter) flush() {
	if c.packets > 0 {
		c.m.Packets(c.leg, c.direction, c.packets, c.bytes)
		c.packets, c.bytes = 0, 0
	}
}

// Reasons a packet is dropped, as metric labels.
const (
	dropMalformed     = "malformed"
	dropPayloadType   = "payload_type"
	dropUnknownSource = "unknown_source"
	dropTranscode     = "transcode"
)

// dropCounter batches one leg's dropped packets by reason.
type dropCounter struct {
	m      Metrics
	leg    string
	counts map[string]int
	total  int
}

func newDropCounter(m Metrics, leg string) *dropCounter {
	return &dropCounter{m: m, leg: leg, counts: make(map[string]int, 4)}
}

func (c *dropCounter) add(reason string) {
	c.counts[reason]++
	c.total++
	if c.total >= counterBatch {
		c.flush()
	}
}

func (c *dropCounter) flush() {
	for reason, n := range c.counts {
		if n > 0 {
			c.m.Dropped(c.leg, reason, n)
			c.counts[reason] = 0
		}
	}
	c.total = 0
}
