package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "callpath/api/gen/wgtwo/sipbreakout/v1"
	"callpath/auth"
	"callpath/registry"
)

// REST is the HTTP/JSON mirror of SipBreakoutService, plus list and get
// for operators. Bodies are the API's messages in proto JSON, so a request
// that works with grpcurl works here too:
//
//	PUT  /sipbreakout/v1/registrations          UpsertRegistrationRequest -> UpsertRegistrationResponse
//	POST /sipbreakout/v1/registrations:delete   DeleteRegistrationRequest -> DeleteRegistrationResponse
//	GET  /sipbreakout/v1/registrations          the caller's registrations
//	GET  /sipbreakout/v1/registrations/{number} one of them
//
// STATUS_CODE_OK answers 200, STATUS_CODE_NOT_ACCEPTABLE 422 with the same
// body; token problems 401/403, a body that is not the message 400, all
// with {"status", "code", "message"}.
type REST struct {
	Registry Registry
	Verifier TokenVerifier
	Log      *logrus.Entry
	grpc     GRPCService
}

// Routes adds the API to mux.
func (h *REST) Routes(mux *http.ServeMux) {
	h.grpc = GRPCService{Registry: h.Registry, Log: h.Log}
	mux.HandleFunc("PUT /sipbreakout/v1/registrations", h.authed(h.upsert))
	mux.HandleFunc("POST /sipbreakout/v1/registrations:delete", h.authed(h.delete))
	mux.HandleFunc("GET /sipbreakout/v1/registrations", h.authed(h.list))
	mux.HandleFunc("GET /sipbreakout/v1/registrations/{number}", h.authed(h.get))
}

// maxBody bounds a request body.
const maxBody = 64 << 10

type handler func(w http.ResponseWriter, r *http.Request, p registry.Principal)

func (h *REST) authed(next handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, _ := bearerOf(r)
		p, err := principalOf(r.Context(), h.Verifier, token, ScopeWrite)
		if err != nil {
			writeAuthError(w, err)
			return
		}
		next(w, r, p)
	}
}

func bearerOf(r *http.Request) (string, bool) { return auth.BearerToken(r.Header.Get("Authorization")) }

// writeAuthError answers a token that is missing, invalid or short of scope.
func writeAuthError(w http.ResponseWriter, err error) {
	if errors.Is(err, errMissingScope) {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", err.Error())
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="callpath"`)
	writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "missing or invalid bearer token")
}

func (h *REST) upsert(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	var req pb.UpsertRegistrationRequest
	if !readMessage(w, r, &req) {
		return
	}
	res, err := h.grpc.UpsertRegistration(withPrincipal(r, p), &req)
	h.answer(w, res, res.GetStatusCode(), err)
}

func (h *REST) delete(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	var req pb.DeleteRegistrationRequest
	if !readMessage(w, r, &req) {
		return
	}
	res, err := h.grpc.DeleteRegistration(withPrincipal(r, p), &req)
	h.answer(w, res, res.GetStatusCode(), err)
}

// registrationView is a registration as list and get show it: the API's
// fields plus its expiry.
type registrationView struct {
	Registration json.RawMessage `json:"registration"`
	ExpiresAt    time.Time       `json:"expires_at"`
}

func view(reg registry.Registration) registrationView {
	b, _ := protojson.Marshal(toProto(reg))
	return registrationView{Registration: b, ExpiresAt: reg.ExpiresAt.UTC()}
}

func (h *REST) list(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	regs := h.Registry.List(p)
	out := struct {
		Registrations []registrationView `json:"registrations"`
	}{Registrations: make([]registrationView, 0, len(regs))}
	for _, reg := range regs {
		out.Registrations = append(out.Registrations, view(reg))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *REST) get(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	reg, err := h.Registry.Get(p, r.PathValue("number"))
	if err != nil {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no registration for this phone number")
		return
	}
	writeJSON(w, http.StatusOK, view(reg))
}

// answer writes a service outcome: the message with 200 or 422, or the
// gRPC error as its HTTP twin.
func (h *REST) answer(w http.ResponseWriter, res proto.Message, code pb.StatusCode, err error) {
	if err != nil {
		st, msg := http.StatusServiceUnavailable, "UNAVAILABLE"
		if s, ok := grpcStatus(err); ok {
			st, msg = s.http, s.code
		}
		writeError(w, st, msg, errorMessage(err))
		return
	}
	b, _ := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(res)
	w.Header().Set("Content-Type", "application/json")
	if code != pb.StatusCode_STATUS_CODE_OK {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	_, _ = w.Write(b)
}

func readMessage(w http.ResponseWriter, r *http.Request, m proto.Message) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "INVALID_ARGUMENT", "request body too large")
		return false
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "request body is not a valid "+string(m.ProtoReflect().Descriptor().Name())+": "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, struct {
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{status, code, message})
}

// withPrincipal is the request's context carrying p, as the gRPC
// interceptor leaves it.
func withPrincipal(r *http.Request, p registry.Principal) context.Context {
	return context.WithValue(r.Context(), principalKey{}, p)
}

type httpTwin struct {
	http int
	code string
}

// grpcStatus maps the gRPC errors the service returns to HTTP.
func grpcStatus(err error) (httpTwin, bool) {
	s, ok := status.FromError(err)
	if !ok {
		return httpTwin{}, false
	}
	switch s.Code() {
	case codes.Unauthenticated:
		return httpTwin{http.StatusUnauthorized, "UNAUTHENTICATED"}, true
	case codes.PermissionDenied:
		return httpTwin{http.StatusForbidden, "PERMISSION_DENIED"}, true
	case codes.InvalidArgument:
		return httpTwin{http.StatusBadRequest, "INVALID_ARGUMENT"}, true
	default:
		return httpTwin{http.StatusServiceUnavailable, "UNAVAILABLE"}, true
	}
}

func errorMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return "unavailable"
}
