package relay

import (
	_ "embed"
	"net/http"
)

// clientJS is the JavaScript client module (client.js), served at
// PathClientJS for pages that use the relay.
//
//go:embed client.js
var clientJS []byte

// ClientJS returns the JavaScript client module.
func ClientJS() []byte { return append([]byte(nil), clientJS...) }

func serveClientJS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	// Short: the module changes with callpath's version, and pages
	// import it by this fixed path.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(clientJS)
}
