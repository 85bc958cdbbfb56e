package webrtc

import "time"

// Metrics receives the media plane's measurements. metrics.Media
// implements it; nil in Config means none are kept. Calls come from the
// packet paths, so implementations must be cheap and must not block.
type Metrics interface {
	// SessionStarted counts a session whose codecs were agreed: codec is
	// "PCMU", "PCMA" or "opus/PCMU"-style for transcoding; mode "relay" or
	// "transcode".
	SessionStarted(codec, mode string)
	// SessionEnded counts a started session's end with its reason
	// ("closed", "media_timeout", "ice_timeout", "ice_failed", "dtls_failed").
	SessionEnded(codec, mode, reason string)
	// Packets adds packets and bytes received (direction "in") or sent
	// ("out") on a leg ("webrtc", "sip"). Called in batches.
	Packets(leg, direction string, packets, bytes int)
	// Dropped counts packets thrown away on a leg, by reason
	// ("unknown_source", "malformed", "payload_type", "transcode").
	Dropped(leg, reason string, packets int)
	// ReceptionReport records what an RTCP receiver report says of the
	// stream we send on a leg: fraction lost (0-1) and interarrival jitter.
	ReceptionReport(leg string, fractionLost float64, jitter time.Duration)
	// TranscodeTime records the codec time of one frame in one direction
	// ("to_sip", "to_webrtc").
	TranscodeTime(direction string, took time.Duration)
	// SetupFailed counts a WebRTC leg that did not come up, by stage
	// ("ice_timeout", "ice", "dtls").
	SetupFailed(stage string)
}

type noMetrics struct{}

func (noMetrics) SessionStarted(string, string)                  {}
func (noMetrics) SessionEnded(string, string, string)            {}
func (noMetrics) Packets(string, string, int, int)               {}
func (noMetrics) Dropped(string, string, int)                    {}
func (noMetrics) ReceptionReport(string, float64, time.Duration) {}
func (noMetrics) TranscodeTime(string, time.Duration)            {}
func (noMetrics) SetupFailed(string)                             {}
