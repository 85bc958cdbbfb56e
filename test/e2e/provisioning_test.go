package e2e

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"callpath/auth"
)

// grpcurl, an independent gRPC client, drives the SipBreakout API as its
// documentation shows: the service found through server reflection, the
// request in proto JSON, the token in the authorization header. The
// registration then shows in the REST mirror and in route explain.
func TestSipBreakoutWithGrpcurl(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		grpcurl = filepath.Join(build.Default.GOPATH, "bin", "grpcurl") // where go install puts it
		if _, err := os.Stat(grpcurl); err != nil {
			t.Fatal("grpcurl not found: run ./scripts/deps.sh (go install github.com/fullstorydev/grpcurl/cmd/grpcurl)")
		}
	}
	gw := startGateway(t, "127.0.0.1:9", `grpc: {listen: "127.0.0.1:0"}`)
	token, err := gw.app.DevIssuer().Mint(auth.Token{Subject: "tas-provider", Scopes: []string{"call.routing:write"}})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, body, tok string) (string, error) {
		args := []string{"-plaintext", "-d", body}
		if tok != "" {
			args = append(args, "-H", "authorization: Bearer "+tok)
		}
		args = append(args, gw.app.GRPCAddr(), "wgtwo.sipbreakout.v1.SipBreakoutService/"+method)
		out, err := exec.Command(grpcurl, args...).CombinedOutput()
		return string(out), err
	}

	out, err := exec.Command(grpcurl, "-plaintext", gw.app.GRPCAddr(), "describe", "wgtwo.sipbreakout.v1.SipBreakoutService").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rpc UpsertRegistration") || !strings.Contains(string(out), "call.routing:write") {
		t.Fatalf("reflection: %v\n%s", err, out)
	}

	upsert := `{"registration": {"phone_number": {"e164": "+4790000001"}, "sip_uri": "sips:tas.example.net",
		"route_type": "ROUTE_TYPE_LOOP", "mobile_originating_prefix": "00"}}`
	if out, err := call("UpsertRegistration", upsert, ""); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("without a token: %v\n%s", err, out)
	}
	out2, err := call("UpsertRegistration", upsert, token)
	if err != nil || !strings.Contains(out2, `"statusCode": "STATUS_CODE_OK"`) || !strings.Contains(out2, `"timeToLive": "3600s"`) {
		t.Fatalf("upsert: %v\n%s", err, out2)
	}
	out2, err = call("UpsertRegistration", strings.Replace(upsert, "sips:", "sip:", 1), token)
	if err != nil || !strings.Contains(out2, "STATUS_CODE_NOT_ACCEPTABLE") || !strings.Contains(out2, "Secure SIP domain name required") {
		t.Fatalf("plain sip: %v\n%s", err, out2)
	}

	e := gw.app.Explain("+4790000001", "+4790000002")
	if len(e.Legs) != 1 || !strings.Contains(e.Legs[0], "INVITE sip:+004790000002@… to sips:tas.example.net (MO LOOP TAS") {
		t.Fatalf("explain after upsert: %+v", e)
	}

	out2, err = call("DeleteRegistration", `{"registration": {"phone_number": {"e164": "+4790000001"}, "sip_uri": "sips:tas.example.net"}}`, token)
	if err != nil || !strings.Contains(out2, "STATUS_CODE_OK") {
		t.Fatalf("delete: %v\n%s", err, out2)
	}
	if e := gw.app.Explain("+4790000001", "+4790000002"); len(e.Registrations) != 0 {
		t.Fatalf("explain after delete: %+v", e)
	}
}
