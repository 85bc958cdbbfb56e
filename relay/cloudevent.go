package relay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// SinkEvent is a CloudEvent accepted at a sink, ready to be queued.
type SinkEvent struct {
	ID   string
	Type string
	// Body is the event in structured mode: a JSON object, valid UTF-8 (it
	// goes into a WebSocket text frame as it is).
	Body []byte
}

// SinkError is why a sink request is refused: its HTTP status and a
// message that tells the sender what to fix.
type SinkError struct {
	Status  int
	Code    string
	Message string
}

func (e *SinkError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func badEvent(format string, args ...any) *SinkError {
	return &SinkError{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Message: fmt.Sprintf(format, args...)}
}

func unsupportedMedia(format string, args ...any) *SinkError {
	return &SinkError{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_MEDIA_TYPE", Message: fmt.Sprintf(format, args...)}
}

// CloudEvents 1.0 HTTP binding media types.
const (
	mediaStructured = "application/cloudevents+json"
	mediaBatch      = "application/cloudevents-batch+json"
)

// ParseSinkEvent reads the CloudEvent of a sink request: structured mode
// (application/cloudevents+json; plain application/json is tolerated) or
// binary mode (ce-* headers, the body as data), which is turned into
// structured JSON. Errors are *SinkError.
func ParseSinkEvent(h http.Header, body []byte) (SinkEvent, error) {
	ct := h.Get("Content-Type")
	media := ""
	var params map[string]string
	if ct != "" {
		var err error
		if media, params, err = mime.ParseMediaType(ct); err != nil {
			return SinkEvent{}, unsupportedMedia("Content-Type %q does not parse: %v", ct, err)
		}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return SinkEvent{}, unsupportedMedia("charset %q: events must be UTF-8", cs)
	}
	switch {
	case media == mediaBatch:
		return SinkEvent{}, unsupportedMedia("batched CloudEvents are not accepted: POST one event per request")
	case media == mediaStructured:
		return parseStructured(body)
	case h.Get("Ce-Specversion") != "":
		return parseBinary(h, media, ct, body)
	case media == "application/json" || media == "":
		return parseStructured(body)
	default:
		return SinkEvent{}, unsupportedMedia("Content-Type %q: want application/cloudevents+json (structured mode) or ce-* headers (binary mode)", media)
	}
}

// requiredAttributes are the CloudEvents 1.0 attributes every event has.
var requiredAttributes = [...]string{"id", "source", "specversion", "type"}

func parseStructured(body []byte) (SinkEvent, error) {
	if !utf8.Valid(body) {
		return SinkEvent{}, badEvent("the body is not UTF-8")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return SinkEvent{}, badEvent("the body is not a JSON object (structured-mode CloudEvent)")
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v) // only for its message
		return SinkEvent{}, badEvent("the body is not valid JSON: %v", err)
	}
	// Member names match exactly (CloudEvents attribute names are lower
	// case); as with encoding/json, the last of duplicates counts.
	var raw [len(requiredAttributes)][]byte
	_ = eachMember(trimmed, func(key string, v []byte) error {
		for i, name := range requiredAttributes {
			if key == name {
				raw[i] = v
			}
		}
		return nil
	})
	var values [len(requiredAttributes)]string
	for i, name := range requiredAttributes {
		if raw[i] == nil {
			return SinkEvent{}, badEvent("the event has no %q attribute", name)
		}
		s, err := jsonString(raw[i])
		if err != nil || s == "" {
			return SinkEvent{}, badEvent("attribute %q must be a non-empty string", name)
		}
		values[i] = s
	}
	id, specversion, typ := values[0], values[2], values[3]
	if err := checkAttributes(specversion, id); err != nil {
		return SinkEvent{}, err
	}
	return SinkEvent{ID: id, Type: typ, Body: trimmed}, nil
}

func checkAttributes(specversion, id string) error {
	if specversion != "1.0" {
		return badEvent("specversion %q: only CloudEvents 1.0 is accepted", specversion)
	}
	if len(id) > maxEventIDLen {
		return badEvent("the event id is longer than %d bytes", maxEventIDLen)
	}
	return nil
}

// parseBinary builds the structured form of a binary-mode event: its ce-*
// headers (percent-decoded, CloudEvents HTTP binding §3.1.3.2) become
// attributes, Content-Type datacontenttype, and the body data: as JSON when
// the media type is JSON, as a string for UTF-8 text, else data_base64.
func parseBinary(h http.Header, media, ct string, body []byte) (SinkEvent, error) {
	attrs := map[string]string{}
	for key, vals := range h {
		lower := strings.ToLower(key)
		if !strings.HasPrefix(lower, "ce-") {
			continue
		}
		name := lower[3:]
		if !validAttributeName(name) || name == "data" || name == "datacontenttype" {
			return SinkEvent{}, badEvent("header %s: %q is not a CloudEvents attribute name", key, name)
		}
		if len(vals) != 1 {
			return SinkEvent{}, badEvent("header %s appears %d times", key, len(vals))
		}
		v, err := url.PathUnescape(vals[0])
		if err != nil || !utf8.ValidString(v) {
			return SinkEvent{}, badEvent("header %s is not percent-encoded UTF-8", key)
		}
		attrs[name] = v
	}
	for _, name := range requiredAttributes {
		if attrs[name] == "" {
			return SinkEvent{}, badEvent("binary-mode event without the ce-%s header", name)
		}
	}
	if err := checkAttributes(attrs["specversion"], attrs["id"]); err != nil {
		return SinkEvent{}, err
	}
	out := make([]byte, 0, len(body)+256)
	out = append(out, '{')
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(out, name)
		out = append(out, ':')
		out = appendJSONString(out, attrs[name])
	}
	if ct != "" {
		out = append(out, `,"datacontenttype":`...)
		out = appendJSONString(out, ct)
	}
	if len(body) > 0 {
		switch {
		case isJSONMedia(media):
			data := bytes.TrimSpace(body)
			if !utf8.Valid(data) || !json.Valid(data) {
				return SinkEvent{}, badEvent("Content-Type is %s but the body is not valid JSON", media)
			}
			out = append(out, `,"data":`...)
			out = append(out, data...)
		case strings.HasPrefix(media, "text/") && utf8.Valid(body):
			out = append(out, `,"data":`...)
			out = appendJSONString(out, string(body))
		default:
			out = append(out, `,"data_base64":"`...)
			out = base64.StdEncoding.AppendEncode(out, body)
			out = append(out, '"')
		}
	}
	out = append(out, '}')
	return SinkEvent{ID: attrs["id"], Type: attrs["type"], Body: out}, nil
}

func isJSONMedia(media string) bool {
	return media == "application/json" || strings.HasSuffix(media, "+json")
}

// validAttributeName: CloudEvents 1.0 §3.1.1, lower-case letters and
// digits (so no data_base64); the spec asks for at most 20 characters and
// so do we.
func validAttributeName(name string) bool {
	if name == "" || len(name) > 20 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
