package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseClientMessage(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ClientMessage
		err  string
	}{
		{`{"type":"ack","seq":7}`, ClientMessage{Type: TypeAck, Seq: 7}, ""},
		{` {"type":"ack","id":"e-1","future":true} `, ClientMessage{Type: TypeAck, ID: "e-1"}, ""},
		{`{"type":"ping"}`, ClientMessage{Type: TypePing}, ""},
		{`{"type":"unbind"}`, ClientMessage{Type: TypeUnbind}, ""},
		{`{"type":"ack"}`, ClientMessage{}, "either seq or id"},
		{`{"type":"ack","seq":3,"id":"x"}`, ClientMessage{}, "either seq or id"},
		{`{"type":"ack","seq":-3}`, ClientMessage{}, "negative"},
		{`{"type":"ack","seq":"3"}`, ClientMessage{}, "whole number"},
		{`{"type":"ack","seq":1.5}`, ClientMessage{}, "whole number"},
		{`{"type":7}`, ClientMessage{}, "type must be a string"},
		{`{"type":"ack","seq":4,}`, ClientMessage{}, "not valid JSON"},
		{`{"Type":"ping"}`, ClientMessage{}, "no type"},
		{`{"type":"ack","seq":null,"id":"e\u00e9","x":{"y":[1,"}"]}}`, ClientMessage{Type: TypeAck, ID: "eé"}, ""},
		{`{"type":"ping","type":"unbind"}`, ClientMessage{Type: TypeUnbind}, ""},
		{`{"type":"ack","id":"` + strings.Repeat("x", maxEventIDLen+1) + `"}`, ClientMessage{}, "longer"},
		{`{"type":"hello"}`, ClientMessage{}, "unknown type"},
		{`{}`, ClientMessage{}, "no type"},
		{`[]`, ClientMessage{}, "JSON object"},
		{"{\"type\":\"ping\xff\"}", ClientMessage{}, "UTF-8"},
		{``, ClientMessage{}, "JSON object"},
	} {
		got, err := ParseClientMessage([]byte(c.in))
		if c.err != "" {
			if err == nil || !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}

func TestEventFrameIsJSON(t *testing.T) {
	id := "quote\" back\\slash \x01 é"
	body := []byte(`{"id":"x","data":{"a":[1,2]}}`)
	frame := appendEventFrame(nil, 42, id, body)
	if len(frame) > eventFrameLen(id, body) {
		t.Fatalf("frame %d bytes, bound %d", len(frame), eventFrameLen(id, body))
	}
	var m EventMessage
	if err := json.Unmarshal(frame, &m); err != nil || m.Type != TypeEvent || m.Seq != 42 || m.ID != id || string(m.Event) != string(body) {
		t.Fatalf("%s -> %+v %v", frame, m, err)
	}
	var e EventMessage
	if err := json.Unmarshal(expiredFrame(12), &e); err != nil || e.Type != TypeExpired || e.Count != 12 {
		t.Fatalf("expired frame %s: %+v %v", expiredFrame(12), e, err)
	}
	if s := closeText(strings.Repeat("é", 100)); len(s) > 123 || !utf8.ValidString(s) {
		t.Fatalf("close text %d bytes, valid %v", len(s), utf8.ValidString(s))
	}
}

// FuzzClientMessage: any frame either parses into a message the session
// can act on (which encodes back to the same message) or is refused with
// ErrBadMessage; nothing panics.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{`{"type":"ack","seq":1}`, `{"type":"ack","id":"a"}`, `{"type":"ping"}`, `{"type":"unbind"}`,
		`{"type":"ack","seq":9223372036854775807}`, `{"type":"ack","seq":1e3}`, `{"type":"ack","id":"\u0000"}`, `{"TYPE":"ping"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseClientMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		switch m.Type {
		case TypeAck:
			if (m.Seq > 0) == (m.ID != "") || m.Seq < 0 {
				t.Fatalf("ack %+v names both or neither", m)
			}
		case TypePing, TypeUnbind:
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		again, err := ParseClientMessage(mustJSON(t, m))
		if err != nil || again != m {
			t.Fatalf("%+v re-encoded parses as %+v %v", m, again, err)
		}
		// encoding/json reads the same members (exact names, last wins).
		var oracle map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&oracle); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
		}
		if s, _ := oracle["type"].(string); s != m.Type {
			t.Fatalf("%q: type %q, encoding/json %q", data, m.Type, s)
		}
		if s, _ := oracle["id"].(string); s != m.ID {
			t.Fatalf("%q: id %q, encoding/json %q", data, m.ID, s)
		}
		if n, ok := oracle["seq"].(json.Number); ok && n.String() != strconv.FormatInt(m.Seq, 10) && m.Seq != 0 {
			t.Fatalf("%q: seq %d, encoding/json %s", data, m.Seq, n)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzSinkEvent: a sink request, structured or binary, is either refused
// with a 4xx SinkError or becomes a structured event whose body is a UTF-8
// JSON object carrying the same id, and whose event frame is valid JSON.
func FuzzSinkEvent(f *testing.F) {
	f.Add([]byte(cloudEvent("a")), "application/cloudevents+json", false, "", "", "", "")
	f.Add([]byte(`{"k":[1,"é"]}`), "application/json", true, "1.0", "id-1", "urn:s", "t")
	f.Add([]byte("plain text"), "text/plain; charset=utf-8", true, "1.0", "id%20x", "s", "t")
	f.Add([]byte{0xff, 0x00}, "application/octet-stream", true, "1.0", "id", "s", "t")
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","ID":"y"}`), "", false, "", "", "", "")
	f.Add([]byte(`[]`), "application/cloudevents-batch+json", false, "", "", "", "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string, binary bool, spec, id, source, typ string) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if binary {
			h.Set("Ce-Specversion", spec)
			h.Set("Ce-Id", id)
			h.Set("Ce-Source", source)
			h.Set("Ce-Type", typ)
		}
		ev, err := ParseSinkEvent(h, body)
		if !binary && (contentType == "" || contentType == mediaStructured) {
			// Structured mode: accepted exactly when encoding/json finds the
			// four attributes as non-empty strings in a UTF-8 object.
			var attrs map[string]any
			ok := utf8.Valid(body) && json.Unmarshal(body, &attrs) == nil && attrs != nil
			for _, name := range requiredAttributes {
				v, _ := attrs[name].(string)
				ok = ok && v != ""
			}
			id, _ := attrs["id"].(string)
			ok = ok && attrs["specversion"] == "1.0" && len(id) <= maxEventIDLen
			if ok != (err == nil) {
				t.Fatalf("%q: accepted %v (%v), encoding/json says %v", body, err == nil, err, ok)
			}
		}
		if err != nil {
			var se *SinkError
			if !errors.As(err, &se) || se.Status < 400 || se.Status > 499 || se.Message == "" {
				t.Fatalf("error %v is not a 4xx SinkError", err)
			}
			return
		}
		if !utf8.Valid(ev.Body) || !json.Valid(ev.Body) || ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted event %q (id %q) is not valid", ev.Body, ev.ID)
		}
		var attrs map[string]any
		if err := json.Unmarshal(ev.Body, &attrs); err != nil || attrs["id"] != ev.ID || attrs["specversion"] != "1.0" || attrs["type"] != ev.Type {
			t.Fatalf("event %s: attributes %v %v, want id %q type %q (encoding/json as the oracle)", ev.Body, attrs, err, ev.ID, ev.Type)
		}
		var m EventMessage
		frame := appendEventFrame(nil, 1, ev.ID, ev.Body)
		if !utf8.Valid(frame) || json.Unmarshal(frame, &m) != nil || m.ID != ev.ID {
			t.Fatalf("frame %q is not a valid event message", frame)
		}
	})
}
