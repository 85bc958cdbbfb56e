package rtpwire

// SequenceMapper carries one incoming stream's sequence numbers and
// timestamps over onto an outgoing stream of our own: gaps, reordering and
// timestamp jumps of the input show through unchanged (so the far end's
// jitter buffer and loss statistics see them), timestamps are scaled when
// the two legs' clocks differ (Opus 48 kHz ↔ G.711 8 kHz), and when the
// input changes SSRC or jumps wildly the output simply continues where it
// was, so the far end never sees a discontinuity it would take for a new
// stream.
type SequenceMapper struct {
	// TimestampMul/TimestampDiv scale input timestamp differences (both 1
	// when the clocks are equal; 1/6 for 48 kHz in, 8 kHz out).
	TimestampMul, TimestampDiv uint32
	// ResyncStep is added to the output timestamp when the input restarts.
	ResyncStep uint32

	started   bool
	inSSRC    uint32
	lastInSeq uint16
	lastInTS  uint32
	lastOut   uint16
	lastOutTS uint32
}

// maxSeqJump is the largest sequence number step (either way) still taken
// as the same stream; beyond it the input is treated as restarted.
const maxSeqJump = 3000

// NewSequenceMapper starts an output stream at the given (random, RFC 3550
// §5.1) initial sequence number and timestamp.
func NewSequenceMapper(initialSeq uint16, initialTS uint32, mul, div, resyncStep uint32) SequenceMapper {
	return SequenceMapper{
		TimestampMul: mul, TimestampDiv: div, ResyncStep: resyncStep,
		lastOut: initialSeq - 1, lastOutTS: initialTS - resyncStep,
	}
}

// Map returns the output sequence number and timestamp of an input packet.
func (m *SequenceMapper) Map(ssrc uint32, seq uint16, ts uint32) (uint16, uint32) {
	dseq := int32(int16(seq - m.lastInSeq))
	if !m.started || ssrc != m.inSSRC || dseq > maxSeqJump || dseq < -maxSeqJump {
		m.started, m.inSSRC = true, ssrc
		m.lastInSeq, m.lastInTS = seq, ts
		m.lastOut++
		m.lastOutTS += m.ResyncStep
		return m.lastOut, m.lastOutTS
	}
	dts := int64(int32(ts-m.lastInTS)) * int64(m.TimestampMul) / int64(m.TimestampDiv)
	outSeq := m.lastOut + uint16(int16(dseq))
	outTS := m.lastOutTS + uint32(int32(dts))
	if dseq > 0 { // only newer packets move the reference; late ones map relative to it
		m.lastInSeq, m.lastInTS = seq, ts
		m.lastOut, m.lastOutTS = outSeq, outTS
	}
	return outSeq, outTS
}

// Next allocates the next output sequence number for a packet of our own
// (concealment, a re-framed chunk) at timestamp step after the last one.
func (m *SequenceMapper) Next(step uint32) (uint16, uint32) {
	m.lastOut++
	m.lastOutTS += step
	return m.lastOut, m.lastOutTS
}

// Last returns the last output sequence number and timestamp handed out.
func (m *SequenceMapper) Last() (uint16, uint32) { return m.lastOut, m.lastOutTS }
