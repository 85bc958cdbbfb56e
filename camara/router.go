package camara

import (
	"net/http"
	"strings"
)

// Router is an http.ServeMux (Go 1.22 method and wildcard patterns) whose
// own 404 and 405 answers are CAMARA error bodies; every route lives under
// a configurable base path.
type Router struct {
	base string
	mux  *http.ServeMux
}

// NewRouter returns a router for routes under basePath (e.g.
// "/webrtc-events/v0.2"; "" or "/" for none).
func NewRouter(basePath string) *Router {
	return &Router{base: strings.TrimSuffix(basePath, "/"), mux: http.NewServeMux()}
}

// Handle registers h for method and a path relative to the base path, in
// ServeMux pattern syntax ("/subscriptions/{id}").
func (rt *Router) Handle(method, path string, h http.Handler) {
	rt.mux.Handle(method+" "+rt.base+path, h)
}

// ServeHTTP dispatches; what the mux would answer in plain text is
// answered with a CAMARA body instead (its redirects pass through).
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := rt.mux.Handler(r)
	if pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch {
	case rec.status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeError(w, ErrMethodNotAllowed)
	case rec.status >= 300 && rec.status < 400:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
	default:
		writeError(w, ErrNotFound.WithMessage("No resource at %s.", r.URL.Path))
	}
}

// recorder captures what the mux's own handlers answer.
type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
