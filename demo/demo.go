// Package demo serves the softphone a telco engineer opens first: a web
// page (/demo) that signs in with a dev token, registers the browser as a
// device (webrtc-registration), takes its events through the notification
// relay (webrtc-events with the relay's sink), calls numbers and answers
// calls (webrtc-call-handling), sends DTMF and hangs up.
//
// It is a lab tool: it exists only while auth.dev_issuer is on, and its
// token endpoint, which mints a token for any phone number asked for,
// answers only browsers on this machine (loopback).
package demo

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/netip"
	"regexp"
	"time"

	"callpath/auth"
)

//go:embed static
var static embed.FS

// Minter signs dev tokens (auth.DevIssuer).
type Minter interface {
	Mint(t auth.Token) (string, error)
}

// Config locates the APIs the page calls.
type Config struct {
	// BasePath is camara.base_path: the prefix of the CAMARA APIs.
	BasePath string
	// TokenTTL is the life of the tokens the page gets (default 1 h).
	TokenTTL time.Duration
}

// Scopes are those of a device app: every operation of the three CAMARA
// APIs on its own number.
var Scopes = []string{
	"webrtc-registration:sessions:create", "webrtc-registration:sessions:write", "webrtc-registration:sessions:delete",
	"webrtc-events:org.camaraproject.webrtc-events.v0.session-invitation:create",
	"webrtc-events:org.camaraproject.webrtc-events.v0.session-status:create",
	"webrtc-events:org.camaraproject.webrtc-events.v0.registration-ends:create",
	"webrtc-events:read", "webrtc-events:delete", "webrtc-events:update",
	"webrtc-call-handling:sessions:create", "webrtc-call-handling:sessions:read",
	"webrtc-call-handling:sessions:write", "webrtc-call-handling:sessions:delete",
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{4,14}$`)

// Routes adds GET /demo/ (the page and its script) and POST /demo/token.
func Routes(mux *http.ServeMux, m Minter, cfg Config) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	files, _ := fs.Sub(static, "static")
	mux.Handle("GET /demo/", http.StripPrefix("/demo/", http.FileServerFS(files)))
	mux.Handle("GET /demo", http.RedirectHandler("/demo/", http.StatusMovedPermanently))
	mux.HandleFunc("GET /demo/config.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"basePath": cfg.BasePath})
	})
	mux.HandleFunc("POST /demo/token", func(w http.ResponseWriter, r *http.Request) {
		// It mints a token for any number: only for a browser on this
		// machine, whatever address the HTTP server listens on.
		if !fromLoopback(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the demo signs in browsers on this machine only"})
			return
		}
		var req struct {
			PhoneNumber string `json:"phoneNumber"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !e164.MatchString(req.PhoneNumber) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "phoneNumber must be E.164, such as +4790000001"})
			return
		}
		tok, err := m.Mint(auth.Token{Subject: "demo-" + req.PhoneNumber, PhoneNumber: req.PhoneNumber, Scopes: Scopes, TTL: cfg.TokenTTL})
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "minting failed"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer",
			"expires_in": int(cfg.TokenTTL.Seconds()), "phone_number": req.PhoneNumber})
	})
}

// fromLoopback reports whether the request comes from this machine's
// loopback (the connection's peer; headers are not trusted).
func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
