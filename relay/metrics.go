package relay

import "time"

// Metrics receives what the relay does; metrics.Relay implements it.
type Metrics interface {
	// ConnectAttempt counts a WebSocket connect by result: accepted,
	// unauthenticated, forbidden, bad_request, over_capacity, gone, quota,
	// unavailable.
	ConnectAttempt(result string)
	ConnectionOpened()
	// ConnectionClosed by reason: client_closed, dead, replaced, shutdown,
	// protocol_error, too_big, write_failed, binding_gone, unbind, internal.
	ConnectionClosed(reason string)
	// SinkRequest counts a sink POST by HTTP status code.
	SinkRequest(code int)
	// Queued: an event was committed to a queue.
	Queued()
	// Delivered: an event was written to its socket; latency runs from the
	// sink request (path "live") or from when it was queued (path
	// "backlog": it waited for the app).
	Delivered(path string, latency time.Duration)
	Acked(n int)
	// Expired counts events dropped by reason: max_age, queue_full.
	Expired(reason string, n int)
}

// Close reasons and connect results, the label values of Metrics.
const (
	resultAccepted        = "accepted"
	resultUnauthenticated = "unauthenticated"
	resultForbidden       = "forbidden"
	resultBadRequest      = "bad_request"
	resultOverCapacity    = "over_capacity"
	resultGone            = "gone"
	resultQuota           = "quota"
	resultUnavailable     = "unavailable"

	reasonClientClosed  = "client_closed"
	reasonDead          = "dead"
	reasonReplaced      = "replaced"
	reasonShutdown      = "shutdown"
	reasonProtocolError = "protocol_error"
	reasonTooBig        = "too_big"
	reasonWriteFailed   = "write_failed"
	reasonBindingGone   = "binding_gone"
	reasonUnbind        = "unbind"
	reasonInternal      = "internal"

	pathLive    = "live"
	pathBacklog = "backlog"
)

type nopMetrics struct{}

func (nopMetrics) ConnectAttempt(string)           {}
func (nopMetrics) ConnectionOpened()               {}
func (nopMetrics) ConnectionClosed(string)         {}
func (nopMetrics) SinkRequest(int)                 {}
func (nopMetrics) Queued()                         {}
func (nopMetrics) Delivered(string, time.Duration) {}
func (nopMetrics) Acked(int)                       {}
func (nopMetrics) Expired(string, int)             {}
