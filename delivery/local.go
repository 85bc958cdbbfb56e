package delivery

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// LocalSinks recognises the sinks this process serves itself (the
// embedded notification relay's): their events are handed to the handler
// in-process instead of being POSTed over the network. They are never
// dialled, so the sink policy (https, no loopback) does not apply to them.
type LocalSinks interface {
	// Handler returns the handler of sink, false when it is not local.
	Handler(sink *url.URL) (http.Handler, bool)
}

// localTransport serves the requests to local sinks in-process and sends
// the rest on.
type localTransport struct {
	local LocalSinks
	next  http.RoundTripper
}

func (t localTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h, ok := t.local.Handler(req.URL)
	if !ok {
		return t.next.RoundTrip(req)
	}
	w := &responseBuffer{header: http.Header{}}
	h.ServeHTTP(w, req)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return &http.Response{
		Status: strconv.Itoa(w.code) + " " + http.StatusText(w.code), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// responseBuffer is the ResponseWriter of an in-process request.
type responseBuffer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }
func (w *responseBuffer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *responseBuffer) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}

// isLocal reports whether raw names a local sink.
func (d *Deliverer) isLocal(raw string) bool {
	if d.opts.Local == nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	_, ok := d.opts.Local.Handler(u)
	return ok
}
