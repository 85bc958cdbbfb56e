//go:build !race

package webrtc

const raceDetector = false
