package main

import (
	"math"
	"sort"
	"sync/atomic"
	"time"

	"callpath/webrtc/codec"
)

func sin(cycles float64) float64 { return math.Sin(2 * math.Pi * cycles) }

// histogram counts latencies in 10 µs steps up to 200 ms, lock-free.
type histogram struct {
	buckets [20000]atomic.Uint32
	over    atomic.Uint64
	total   atomic.Uint64
}

const histogramStep = 10 * time.Microsecond

func newHistogram() *histogram { return &histogram{} }

func (h *histogram) add(d time.Duration) {
	h.total.Add(1)
	i := int(d / histogramStep)
	if i < 0 {
		i = 0
	}
	if i >= len(h.buckets) {
		h.over.Add(1)
		return
	}
	h.buckets[i].Add(1)
}

// quantile returns the latency below which q of the samples fall.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range h.buckets {
		seen += uint64(h.buckets[i].Load())
		if seen >= want {
			return time.Duration(i+1) * histogramStep
		}
	}
	return time.Duration(len(h.buckets)) * histogramStep
}

// codecCallsPerCore times libopus alone on one call's work per 20 ms —
// Opus decode at 8 kHz + µ-law encode toward the phone, µ-law decode +
// Opus encode at 8 kHz (complexity 5, 16 kbit/s) toward the browser, what
// the plane's transcoder does — and returns how many calls one core
// could carry doing nothing else.
func codecCallsPerCore(d time.Duration) (float64, error) {
	opusFrames, pcmuFrames, err := toneFrames()
	if err != nil {
		return 0, err
	}
	dec, err := codec.NewOpusDecoder(8000)
	if err != nil {
		return 0, err
	}
	enc, err := codec.NewOpusEncoder(8000)
	if err != nil {
		return 0, err
	}
	pcm := make([]int16, 960)
	ulaw := make([]byte, 960)
	out := make([]byte, 400)
	start := time.Now()
	frames := 0
	for time.Since(start) < d {
		n, err := dec.Decode(opusFrames[frames%len(opusFrames)], pcm)
		if err != nil {
			return 0, err
		}
		codec.EncodeUlaw(ulaw, pcm[:n])
		codec.DecodeUlaw(pcm[:160], pcmuFrames[frames%len(pcmuFrames)])
		if _, err := enc.Encode(pcm[:160], out); err != nil {
			return 0, err
		}
		frames++
	}
	perFrame := time.Since(start) / time.Duration(frames)
	return float64(20*time.Millisecond) / float64(perFrame), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDuration(xs []time.Duration) time.Duration {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return time.Duration(median(f))
}
