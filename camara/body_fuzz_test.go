package camara

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequestBodies feeds arbitrary bodies to the two create operations
// (subscription and registration), as an authorised subscriber: whatever
// the body, the answer is a success or a CAMARA error body, never a panic
// or a 5xx.
func FuzzRequestBodies(f *testing.F) {
	seed, _ := json.Marshal(validRequest())
	f.Add(seed, true)
	f.Add([]byte(`{"deviceId": "7d444840-9dc0-11d1-b245-5ffdce74fad2", "registrationExpireTime": "2030-01-01T00:00:00Z"}`), false)
	f.Add([]byte(`{"types": ["x"], "sink": 5}`), true)
	f.Add([]byte(`{`), false)
	f.Add([]byte(`null`), true)
	rf := newRegFixture(f)
	events, eventsTok := rf.events.Handler(), rf.token(alice)
	reg := (&Registration{BasePath: regBase, Verifier: rf.events.cfg.Verifier, Devices: rf.devices}).Handler()
	regTok := rf.token(alice, regScopes...)
	f.Fuzz(func(t *testing.T, body []byte, subscription bool) {
		h, path, tok := events, defaultEventsBasePath+"/subscriptions", eventsTok
		if !subscription {
			h, path, tok = reg, regBase+"/sessions", regTok
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d %s for %q", rec.Code, rec.Body, body)
		}
		if rec.Code >= 400 {
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status != rec.Code || e.Code == "" || e.Message == "" {
				t.Fatalf("error body %q for %q", rec.Body, body)
			}
		}
	})
}
