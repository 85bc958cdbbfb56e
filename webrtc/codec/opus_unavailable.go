//go:build !opus

package codec

// OpusAvailable tells whether this build can encode and decode Opus. This
// build has no C dependency and no Opus: the media plane then negotiates
// G.711 with browsers and never offers Opus (build with -tags opus, and
// Debian libopus-dev, to transcode).
const OpusAvailable = false

// OpusEncoder is not available in this build.
type OpusEncoder struct{}

// NewOpusEncoder fails with ErrOpusUnavailable in this build.
func NewOpusEncoder(int) (*OpusEncoder, error) { return nil, ErrOpusUnavailable }

// Encode fails with ErrOpusUnavailable in this build.
func (*OpusEncoder) Encode([]int16, []byte) (int, error) { return 0, ErrOpusUnavailable }

// OpusDecoder is not available in this build.
type OpusDecoder struct{}

// NewOpusDecoder fails with ErrOpusUnavailable in this build.
func NewOpusDecoder(int) (*OpusDecoder, error) { return nil, ErrOpusUnavailable }

// Decode fails with ErrOpusUnavailable in this build.
func (*OpusDecoder) Decode([]byte, []int16) (int, error) { return 0, ErrOpusUnavailable }

// Conceal fails with ErrOpusUnavailable in this build.
func (*OpusDecoder) Conceal([]byte, []int16) error { return ErrOpusUnavailable }
