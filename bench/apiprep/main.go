// Command apiprep prepares `make bench-api`'s requests for many
// subscribers: it mints a dev token per subscriber (the gateway's own dev
// issuer key), registers a device for each (subscriptions name a live
// registration), and writes 'token<TAB>body' lines for bench/apiload.
//
//	go run ./bench/apiprep -key var/dev-issuer.key -api http://127.0.0.1:8080 -n 200 -kind subscription -out reqs.txt
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"callpath/auth"
)

const regType = "org.camaraproject.webrtc-events.v0.registration-ends"

func main() {
	key := flag.String("key", "", "the gateway's dev issuer key file")
	issuer := flag.String("issuer", "callpath-dev", "token issuer")
	audience := flag.String("audience", "callpath", "token audience")
	api := flag.String("api", "", "the gateway's HTTP API, http://host:port")
	n := flag.Int("n", 200, "subscribers")
	kind := flag.String("kind", "subscription", "subscription or registration")
	out := flag.String("out", "", "output file")
	flag.Parse()
	if *key == "" || *api == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "apiprep: -key, -api and -out are required")
		os.Exit(2)
	}
	iss, err := auth.LoadOrCreateDevIssuer(*key, *issuer, *audience)
	if err != nil {
		fail(err)
	}
	var lines []string
	exp := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	for i := 0; i < *n; i++ {
		number := fmt.Sprintf("+4791%06d", i)
		device := fmt.Sprintf("0b6f5f2e-7f5c-4c1e-9a5b-%012d", i)
		tok, err := iss.Mint(auth.Token{Subject: "bench-" + number, PhoneNumber: number, TTL: 2 * time.Hour,
			Scopes: []string{"webrtc-registration:sessions:create", "webrtc-events:" + regType + ":create"}})
		if err != nil {
			fail(err)
		}
		if *kind == "registration" {
			// Another device of the subscriber: the one the subscriptions
			// name stays registered while this one is registered again.
			other := fmt.Sprintf("1c6f5f2e-7f5c-4c1e-9a5b-%012d", i)
			lines = append(lines, tok+"\t"+`{"deviceId":"`+other+`"}`)
			continue
		}
		reg, err := register(*api, tok, device)
		if err != nil {
			fail(err)
		}
		body := `{"protocol":"HTTP","sink":"https://127.0.0.1:9/sink","types":["` + regType + `"],` +
			`"sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"t","accessTokenExpiresUtc":"` + exp + `","accessTokenType":"bearer"},` +
			`"config":{"subscriptionDetail":{"registrationId":"` + reg + `"}}}`
		lines = append(lines, tok+"\t"+body)
	}
	if err := os.WriteFile(*out, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		fail(err)
	}
}

func register(api, token, device string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, api+"/webrtc-registration/v0.3/sessions", bytes.NewBufferString(`{"deviceId":"`+device+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		RegistrationID string `json:"registrationId"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("register %s: %d %v", device, res.StatusCode, err)
	}
	return out.RegistrationID, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "apiprep:", err)
	os.Exit(1)
}
