package codec

// µ-law and A-law code words are converted into each other through one
// 256-entry table per direction, built by decoding with one law and
// encoding with the other: a 20 ms frame is 160 look-ups done in place, so
// a call whose legs settled on different G.711 laws (a fork's 183 in one,
// its 200 in the other; a browser without the TAS's law) is still relayed,
// not transcoded. The tables are written once at start-up.
var (
	ulawToAlawTable = buildConvertTable(ulawToLinear, linearToAlaw)
	alawToUlawTable = buildConvertTable(alawToLinear, linearToUlaw)
)

func buildConvertTable(decode func(byte) int16, encode func(int16) byte) *[256]byte {
	var t [256]byte
	for i := range t {
		t[i] = encode(decode(byte(i)))
	}
	return &t
}

// UlawToAlaw rewrites the µ-law code words of b as A-law, in place.
func UlawToAlaw(b []byte) {
	for i, c := range b {
		b[i] = ulawToAlawTable[c]
	}
}

// AlawToUlaw rewrites the A-law code words of b as µ-law, in place.
func AlawToUlaw(b []byte) {
	for i, c := range b {
		b[i] = alawToUlawTable[c]
	}
}
