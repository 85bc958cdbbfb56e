package codec

import "errors"

var (
	// ErrOpus wraps a failure reported by libopus.
	ErrOpus = errors.New("opus")
	// ErrOpusUnavailable is returned by the Opus constructors of a build
	// without the "opus" tag.
	ErrOpusUnavailable = errors.New("opus is not available in this build (build tag opus)")
)
