package demo

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"callpath/auth"
)

type minter struct{ got []auth.Token }

func (m *minter) Mint(t auth.Token) (string, error) {
	m.got = append(m.got, t)
	return "token-for-" + t.PhoneNumber, nil
}

// The token endpoint answers only this machine, only for an E.164 number,
// with a device app's scopes; the page and its script are served.
func TestTokenEndpointAndPage(t *testing.T) {
	m := &minter{}
	mux := http.NewServeMux()
	Routes(mux, m, Config{BasePath: "/camara"})
	post := func(remote, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/demo/token", strings.NewReader(body))
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		return w
	}
	if w := post("192.0.2.7:40000", `{"phoneNumber":"+4790000001"}`); w.Code != http.StatusForbidden {
		t.Errorf("from another machine: %d %s", w.Code, w.Body)
	}
	if w := post("127.0.0.1:40000", `{"phoneNumber":"4790000001"}`); w.Code != http.StatusBadRequest {
		t.Errorf("not E.164: %d %s", w.Code, w.Body)
	}
	w := post("[::1]:40000", `{"phoneNumber":"+4790000001"}`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "token-for-+4790000001") {
		t.Fatalf("from loopback: %d %s", w.Code, w.Body)
	}
	if len(m.got) != 1 || m.got[0].PhoneNumber != "+4790000001" || len(m.got[0].Scopes) != len(Scopes) {
		t.Fatalf("minted %+v", m.got)
	}
	for path, want := range map[string]string{"/demo/": "callpath softphone", "/demo/softphone.js": "RelayClient", "/demo/config.json": `"/camara"`} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET %s: %d", path, w.Code)
		}
	}
}
