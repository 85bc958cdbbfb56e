package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Media holds the series of the media plane (package webrtc), which it
// reaches through the webrtc.Metrics interface. The packet paths report
// in batches and through children resolved here once: a label lookup per
// packet would cost more than relaying it.
type Media struct {
	sessionsActive *prometheus.GaugeVec
	sessions       *prometheus.CounterVec
	ended          *prometheus.CounterVec
	packets        *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	fractionLost   *prometheus.HistogramVec
	jitter         *prometheus.HistogramVec
	transcode      *prometheus.HistogramVec
	setupFailures  *prometheus.CounterVec

	packetChildren map[[2]string]prometheus.Counter // leg, direction
	byteChildren   map[[2]string]prometheus.Counter
	transcodeTo    map[string]prometheus.Observer // direction
}

// Label values the media plane uses; children for them exist up front.
var (
	mediaLegs       = []string{"webrtc", "sip"}
	mediaDirections = []string{"in", "out"}
)

func newMedia(reg *prometheus.Registry) *Media {
	m := &Media{
		sessionsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "media", Name: "sessions_active",
			Help: "Media sessions with both legs negotiated and not yet ended, by codec (PCMU, PCMA, PCMU/PCMA for a law conversion, opus/PCMU, …; WebRTC leg first) and mode (relay, transcode).",
		}, []string{"codec", "mode"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "media", Name: "sessions_total",
			Help: "Media sessions whose codecs were agreed, by codec and mode.",
		}, []string{"codec", "mode"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "media", Name: "sessions_ended_total",
			Help: "Media sessions ended, by reason: closed (by the call), media_timeout, ice_timeout, ice_failed, dtls_failed.",
		}, []string{"reason"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "media", Name: "packets_total",
			Help: "RTP packets by leg (webrtc, sip) and direction (in: received from the leg's peer, out: sent to it).",
		}, []string{"leg", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "media", Name: "bytes_total",
			Help: "RTP bytes (header and payload, SRTP excluded) by leg and direction.",
		}, []string{"leg", "direction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "media", Name: "packets_dropped_total",
			Help: "Packets thrown away by leg and reason: unknown_source (not the latched peer), malformed, payload_type (not negotiated), transcode (undecodable).",
		}, []string{"leg", "reason"}),
		fractionLost: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "media", Name: "rtcp_fraction_lost_ratio",
			Help:    "Fraction of our packets lost, as the peer's RTCP receiver reports say, by leg.",
			Buckets: []float64{0, .005, .01, .02, .05, .1, .2, .5},
		}, []string{"leg"}),
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "media", Name: "rtcp_jitter_seconds",
			Help:    "Interarrival jitter of our packets, as the peer's RTCP receiver reports say, by leg.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5},
		}, []string{"leg"}),
		transcode: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "media", Name: "transcode_seconds",
			Help:    "Codec time of one 20 ms frame by direction (to_sip: Opus decode + G.711 encode; to_webrtc: G.711 decode + Opus encode).",
			Buckets: []float64{.00001, .00002, .00005, .0001, .0002, .0005, .001, .002, .005},
		}, []string{"direction"}),
		setupFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "media", Name: "setup_failures_total",
			Help: "WebRTC legs that did not come up, by stage: ice_timeout (no ICE+DTLS within the connect timeout), ice, dtls.",
		}, []string{"stage"}),
		packetChildren: map[[2]string]prometheus.Counter{},
		byteChildren:   map[[2]string]prometheus.Counter{},
		transcodeTo:    map[string]prometheus.Observer{},
	}
	reg.MustRegister(m.sessionsActive, m.sessions, m.ended, m.packets, m.bytes, m.dropped, m.fractionLost, m.jitter, m.transcode, m.setupFailures)
	for _, leg := range mediaLegs {
		for _, dir := range mediaDirections {
			m.packetChildren[[2]string{leg, dir}] = m.packets.WithLabelValues(leg, dir)
			m.byteChildren[[2]string{leg, dir}] = m.bytes.WithLabelValues(leg, dir)
		}
	}
	for _, dir := range []string{"to_sip", "to_webrtc"} {
		m.transcodeTo[dir] = m.transcode.WithLabelValues(dir)
	}
	return m
}

// SessionStarted counts a session whose codecs were agreed.
func (m *Media) SessionStarted(codec, mode string) {
	m.sessions.WithLabelValues(codec, mode).Inc()
	m.sessionsActive.WithLabelValues(codec, mode).Inc()
}

// SessionEnded counts a started session's end.
func (m *Media) SessionEnded(codec, mode, reason string) {
	m.sessionsActive.WithLabelValues(codec, mode).Dec()
	m.ended.WithLabelValues(reason).Inc()
}

// Packets adds a batch of packets and bytes on a leg in a direction.
func (m *Media) Packets(leg, direction string, packets, bytes int) {
	key := [2]string{leg, direction}
	if c, ok := m.packetChildren[key]; ok {
		c.Add(float64(packets))
		m.byteChildren[key].Add(float64(bytes))
		return
	}
	m.packets.WithLabelValues(leg, direction).Add(float64(packets))
	m.bytes.WithLabelValues(leg, direction).Add(float64(bytes))
}

// Dropped counts packets thrown away.
func (m *Media) Dropped(leg, reason string, packets int) {
	m.dropped.WithLabelValues(leg, reason).Add(float64(packets))
}

// ReceptionReport records one RTCP reception block about our stream.
func (m *Media) ReceptionReport(leg string, fractionLost float64, jitter time.Duration) {
	m.fractionLost.WithLabelValues(leg).Observe(fractionLost)
	m.jitter.WithLabelValues(leg).Observe(jitter.Seconds())
}

// TranscodeTime records the codec time of one frame.
func (m *Media) TranscodeTime(direction string, took time.Duration) {
	if o, ok := m.transcodeTo[direction]; ok {
		o.Observe(took.Seconds())
		return
	}
	m.transcode.WithLabelValues(direction).Observe(took.Seconds())
}

// SetupFailed counts a WebRTC leg that did not come up.
func (m *Media) SetupFailed(stage string) {
	m.setupFailures.WithLabelValues(stage).Inc()
}
