package sdpaudio

import "strings"

// WithDirection returns raw with the direction attribute of its first
// audio stream set to d: an existing media-level attribute is replaced,
// or one is added at the end of the stream's lines (attributes come last
// in a media description, RFC 4566 §5). Other lines are kept as they are.
// (pion writes sendrecv where RFC 3264 §6.1 wants recvonly in answer to
// sendonly, and stops its transceiver on an inactive offer; the plane
// states the direction itself.)
func WithDirection(raw string, d Direction) string {
	eol := "\n"
	if strings.Contains(raw, "\r\n") {
		eol = "\r\n"
	}
	attr := "a=" + d.String()
	lines := strings.Split(strings.TrimRight(raw, "\r\n"), "\n")
	out := make([]string, 0, len(lines)+1)
	inAudio, done := false, false
	for _, line := range lines {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "m=") {
			if inAudio && !done {
				out, done = append(out, attr), true
			}
			inAudio = !done && strings.HasPrefix(line, "m=audio ")
		}
		if inAudio && !done && strings.HasPrefix(line, "a=") {
			if _, isDir := ParseDirection(line[2:]); isDir {
				out, done = append(out, attr), true
				continue
			}
		}
		out = append(out, line)
	}
	if inAudio && !done {
		out = append(out, attr)
	}
	return strings.Join(out, eol) + eol
}
