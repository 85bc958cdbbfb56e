//go:build race

package webrtc

// raceDetector is on: sync.Pool then drops a quarter of what is put back
// (to expose misuse), so pooled buffers (pion's SRTP) get allocated anew
// and allocation counts mean nothing.
const raceDetector = true
