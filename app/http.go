package app

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"callpath/demo"
)

// httpHandler serves the operator endpoints.
func (a *App) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.ready)
	a.provisioningRoutes(mux)
	a.camara.routes(mux, a.cfg.CAMARA.BasePath)
	a.media.routes(a.camara, mux, a.cfg.CAMARA.BasePath)
	a.relay.routes(mux)
	if a.devIssuer != nil && a.relay != nil && a.media != nil {
		// The softphone needs the relay for its events and the media
		// plane for its calls; its token endpoint needs the dev issuer.
		demo.Routes(mux, a.devIssuer, demo.Config{BasePath: a.cfg.CAMARA.BasePath})
	}
	if a.cfg.HTTP.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// ready is 200 while the gateway takes calls: the store answers and no
// drain is under way. A load balancer stops sending calls on 503.
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	if a.sip.Draining() {
		writeText(w, http.StatusServiceUnavailable, "draining\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.db.Ping(ctx); err != nil {
		writeText(w, http.StatusServiceUnavailable, "store unavailable\n")
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
