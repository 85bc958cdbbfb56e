package relay

import (
	"encoding/json"
	"errors"
	"strconv"
)

// The sink and the sockets read a few top-level members of small JSON
// objects (a CloudEvent's id, source, specversion and type; a message's type,
// seq and id) for every event. Decoding them with encoding/json into a map
// or a struct allocated about a kilobyte each and was a fifth of the
// relay's garbage; this walks the object in place instead. Its input has
// passed json.Valid, so it only has to find boundaries, not check syntax.
// FuzzSinkEvent and FuzzClientMessage compare it with encoding/json.

var errNotObject = errors.New("not a JSON object")

// eachMember calls fn with the key (unescaped) and the raw value of every
// member of the JSON object data, which must be valid JSON (json.Valid).
func eachMember(data []byte, fn func(key string, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for i < len(data) {
		end := skipString(data, i)
		key, err := jsonString(data[i:end])
		if err != nil {
			return err
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // past ':'
		vend := skipValue(data, i)
		if err := fn(key, data[i:vend]); err != nil {
			return err
		}
		i = skipSpace(data, vend)
		if i >= len(data) || data[i] == '}' {
			return nil
		}
		i = skipSpace(data, i+1) // past ','
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at data[i] ('"').
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index after the value starting at data[i].
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) && data[i] != ',' && data[i] != '}' && data[i] != ']' &&
			data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r' {
			i++
		}
		return i
	}
}

// jsonString decodes a raw JSON string (with its quotes); one without
// escapes is taken as it is.
func jsonString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", errNotString
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			err := json.Unmarshal(raw, &s)
			return s, err
		}
	}
	return string(inner), nil
}

var errNotString = errors.New("not a string")

// jsonInt decodes a raw JSON integer (int64; no fraction or exponent, as
// encoding/json decodes into an int64).
func jsonInt(raw []byte) (int64, error) {
	return strconv.ParseInt(string(raw), 10, 64)
}

func isNull(raw []byte) bool { return string(raw) == "null" }
