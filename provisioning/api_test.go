package provisioning_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	commonv1 "callpath/api/gen/wgtwo/common/v1"
	pb "callpath/api/gen/wgtwo/sipbreakout/v1"
	"callpath/auth"
	"callpath/provisioning"
	"callpath/registry"
	"callpath/routing"
	"callpath/store"
)

type fixture struct {
	client pb.SipBreakoutServiceClient
	rest   string
	issuer *auth.DevIssuer
	reg    *registry.Registry
}

// newFixture serves the API over a real gRPC server and an HTTP server on
// loopback, with a real SQLite store and dev-issuer tokens.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	log := logrus.NewEntry(quiet)
	db, err := store.Open(context.Background(), filepath.Join(dir, "db"), store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	reg, err := registry.New(context.Background(), registry.Config{TTL: time.Hour}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := auth.LoadOrCreateDevIssuer(filepath.Join(dir, "key"), "test-issuer", "callpath")
	if err != nil {
		t.Fatal(err)
	}
	verifier := &auth.Verifier{Issuer: "test-issuer", Audience: "callpath", Keys: dev.Keys()}

	srv := grpc.NewServer(grpc.UnaryInterceptor(provisioning.AuthInterceptor(verifier)))
	(&provisioning.GRPCService{Registry: reg, Log: log}).Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	mux := http.NewServeMux()
	(&provisioning.REST{Registry: reg, Verifier: verifier, Log: log}).Routes(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &fixture{client: pb.NewSipBreakoutServiceClient(conn), rest: hs.URL, issuer: dev, reg: reg}
}

func (f *fixture) token(t *testing.T, tok auth.Token) string {
	t.Helper()
	s, err := f.issuer.Mint(tok)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// callJSON makes an HTTP request with an optional bearer token and decodes
// the JSON answer.
func callJSON(t *testing.T, method, url, body, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func registration(number, uri string, rt pb.RouteType) *pb.Registration {
	r := &pb.Registration{SipUri: uri, RouteType: rt, MobileOriginatingPrefix: "00"}
	if number != "" {
		r.PhoneNumber = &commonv1.E164{E164: number}
	}
	return r
}

func TestGRPCUpsertAndDelete(t *testing.T) {
	f := newFixture(t)
	client := withToken(f.token(t, auth.Token{Subject: "tas-provider", Scopes: []string{provisioning.ScopeWrite}}))

	res, err := f.client.UpsertRegistration(client, &pb.UpsertRegistrationRequest{
		Registration: registration("+4790000001", "sips:tas.example.net:5061", pb.RouteType_ROUTE_TYPE_LOOP)})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != pb.StatusCode_STATUS_CODE_OK || res.TimeToLive.AsDuration() != time.Hour {
		t.Fatalf("upsert: %v", res)
	}
	if got, ok := f.reg.Lookup("+4790000001"); !ok || got.RouteType != registry.RouteLoop || got.MOPrefix != "00" {
		t.Fatalf("registry has %+v, %v", got, ok)
	}

	for name, tc := range map[string]struct {
		reg  *pb.Registration
		want string
	}{
		"not E.164":      {registration("4790000001", "sips:tas.example.net", pb.RouteType_ROUTE_TYPE_LOOP), "E.164"},
		"plain sip":      {registration("+4790000002", "sip:tas.example.net", pb.RouteType_ROUTE_TYPE_LOOP), "Secure SIP domain name required"},
		"garbage uri":    {registration("+4790000002", "tas example", pb.RouteType_ROUTE_TYPE_LOOP), "sips:"},
		"no route type":  {registration("+4790000002", "sips:tas.example.net", pb.RouteType_ROUTE_TYPE_UNSPECIFIED), "route_type"},
		"missing number": {registration("", "sips:tas.example.net", pb.RouteType_ROUTE_TYPE_FORK), "phone_number is required"},
	} {
		res, err := f.client.UpsertRegistration(client, &pb.UpsertRegistrationRequest{Registration: tc.reg})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.StatusCode != pb.StatusCode_STATUS_CODE_NOT_ACCEPTABLE || !strings.Contains(res.ErrorMessage, tc.want) {
			t.Errorf("%s: %v, want NOT_ACCEPTABLE mentioning %q", name, res, tc.want)
		}
	}

	del, err := f.client.DeleteRegistration(client, &pb.DeleteRegistrationRequest{
		Registration: registration("+4790000001", "sips:other.example.net", pb.RouteType_ROUTE_TYPE_UNSPECIFIED)})
	if err != nil || del.StatusCode != pb.StatusCode_STATUS_CODE_NOT_ACCEPTABLE || !strings.Contains(del.ErrorMessage, "does not match") {
		t.Fatalf("delete with another sip_uri: %v, %v", del, err)
	}
	del, err = f.client.DeleteRegistration(client, &pb.DeleteRegistrationRequest{
		Registration: registration("+4790000001", "sips:tas.example.net:5061", pb.RouteType_ROUTE_TYPE_UNSPECIFIED)})
	if err != nil || del.StatusCode != pb.StatusCode_STATUS_CODE_OK {
		t.Fatalf("delete: %v, %v", del, err)
	}
	if _, ok := f.reg.Lookup("+4790000001"); ok {
		t.Fatal("deleted registration still there")
	}
}

func TestGRPCAuth(t *testing.T) {
	f := newFixture(t)
	req := &pb.UpsertRegistrationRequest{Registration: registration("+4790000001", "sips:tas.example.net", pb.RouteType_ROUTE_TYPE_LOOP)}
	if _, err := f.client.UpsertRegistration(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if _, err := f.client.UpsertRegistration(withToken("garbage"), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("bad token: %v", err)
	}
	noScope := withToken(f.token(t, auth.Token{Subject: "tas-provider", Scopes: []string{"call.routing:read"}}))
	if _, err := f.client.UpsertRegistration(noScope, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("token without scope: %v", err)
	}
	// A user token manages its own number: taken from the token when the
	// request omits it, refused when it names another.
	user := withToken(f.token(t, auth.Token{Subject: "user-9", PhoneNumber: "+4790000009", Scopes: []string{provisioning.ScopeWrite}}))
	res, err := f.client.UpsertRegistration(user, &pb.UpsertRegistrationRequest{Registration: registration("", "sips:pbx.example.net", pb.RouteType_ROUTE_TYPE_FALLBACK)})
	if err != nil || res.StatusCode != pb.StatusCode_STATUS_CODE_OK {
		t.Fatalf("user token, own number: %v, %v", res, err)
	}
	if _, ok := f.reg.Lookup("+4790000009"); !ok {
		t.Fatal("user's registration not stored under the token's number")
	}
	if _, err := f.client.UpsertRegistration(user, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("user token, another number: %v", err)
	}
	// Another client cannot replace or delete it.
	other := withToken(f.token(t, auth.Token{Subject: "someone-else", Scopes: []string{provisioning.ScopeWrite}}))
	if _, err := f.client.UpsertRegistration(other, &pb.UpsertRegistrationRequest{Registration: registration("+4790000009", "sips:evil.example.net", pb.RouteType_ROUTE_TYPE_LOOP)}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("another client's upsert: %v", err)
	}
}

func TestREST(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, auth.Token{Subject: "tas-provider", Scopes: []string{provisioning.ScopeWrite}})
	do := func(method, path, body, token string) (int, map[string]any) {
		t.Helper()
		return callJSON(t, method, f.rest+path, body, token)
	}
	upsert := `{"registration": {"phoneNumber": {"e164": "+4790000001"}, "sipUri": "sips:tas.example.net", "routeType": "ROUTE_TYPE_FORK"}}`
	if code, out := do("PUT", "/sipbreakout/v1/registrations", upsert, ""); code != 401 || out["code"] != "UNAUTHENTICATED" {
		t.Fatalf("no token: %d %v", code, out)
	}
	code, out := do("PUT", "/sipbreakout/v1/registrations", upsert, tok)
	if code != 200 || out["statusCode"] != "STATUS_CODE_OK" || out["timeToLive"] != "3600s" {
		t.Fatalf("upsert: %d %v", code, out)
	}
	code, out = do("PUT", "/sipbreakout/v1/registrations", `{"registration": {"phone_number": {"e164": "+4790000002"}, "sip_uri": "sip:tas.example.net", "route_type": 1}}`, tok)
	if code != 422 || out["statusCode"] != "STATUS_CODE_NOT_ACCEPTABLE" || !strings.Contains(out["errorMessage"].(string), "Secure SIP") {
		t.Fatalf("plain sip: %d %v", code, out)
	}
	if code, out = do("PUT", "/sipbreakout/v1/registrations", `{"registration": `, tok); code != 400 || out["code"] != "INVALID_ARGUMENT" {
		t.Fatalf("bad json: %d %v", code, out)
	}
	code, out = do("GET", "/sipbreakout/v1/registrations", "", tok)
	if code != 200 || len(out["registrations"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, out)
	}
	if code, _ = do("GET", "/sipbreakout/v1/registrations/+4790000001", "", tok); code != 200 {
		t.Fatalf("get: %d", code)
	}
	other := f.token(t, auth.Token{Subject: "other", Scopes: []string{provisioning.ScopeWrite}})
	if code, _ = do("GET", "/sipbreakout/v1/registrations/+4790000001", "", other); code != 404 {
		t.Fatalf("another client's get: %d", code)
	}
	code, out = do("POST", "/sipbreakout/v1/registrations:delete", `{"registration": {"phoneNumber": {"e164": "+4790000001"}, "sipUri": "sips:tas.example.net"}}`, tok)
	if code != 200 || out["statusCode"] != "STATUS_CODE_OK" {
		t.Fatalf("delete: %d %v", code, out)
	}
}

// GET /routing/v1/explain needs the operator scope and plans the call.
func TestExplainREST(t *testing.T) {
	f := newFixture(t)
	planner := &routing.Breakout{Destinations: routing.NewStaticTable(nil, "sip:core.example.net"), Registrations: f.reg, FallbackTimeout: 30 * time.Second}
	dev := &auth.Verifier{Issuer: "test-issuer", Audience: "callpath", Keys: f.issuer.Keys()}
	mux := http.NewServeMux()
	provisioning.ExplainRoutes(mux, planner, dev)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	client := withToken(f.token(t, auth.Token{Subject: "tas-provider", Scopes: []string{provisioning.ScopeWrite}}))
	if _, err := f.client.UpsertRegistration(client, &pb.UpsertRegistrationRequest{
		Registration: registration("+4790000002", "sips:tas.example.net", pb.RouteType_ROUTE_TYPE_FORK)}); err != nil {
		t.Fatal(err)
	}
	get := func(query, token string) (int, map[string]any) {
		t.Helper()
		return callJSON(t, "GET", hs.URL+"/routing/v1/explain?"+query, "", token)
	}
	q := "from=%2B4790000001&to=%2B4790000002"
	if code, _ := get(q, ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := get(q, f.token(t, auth.Token{Subject: "tas-provider", Scopes: []string{provisioning.ScopeWrite}})); code != 403 {
		t.Fatalf("without the operator scope: %d", code)
	}
	op := f.token(t, auth.Token{Subject: "noc", Scopes: []string{provisioning.ScopeOperator}})
	if code, out := get("from=1&to=2", op); code != 400 || out["code"] != "INVALID_ARGUMENT" {
		t.Fatalf("bad numbers: %d %v", code, out)
	}
	code, out := get(q, op)
	if code != 200 || len(out["legs"].([]any)) != 2 || !strings.HasPrefix(out["result"].(string), "fork") {
		t.Fatalf("explain: %d %v", code, out)
	}
}
