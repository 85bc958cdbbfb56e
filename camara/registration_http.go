package camara

import (
	"context"
	"errors"
	"net/http"
	"time"

	"callpath/devreg"
	"callpath/upstream"
)

// The webrtc-registration scopes (r2.2).
const (
	registrationScopeCreate = "webrtc-registration:sessions:create"
	registrationScopeWrite  = "webrtc-registration:sessions:write"
	registrationScopeDelete = "webrtc-registration:sessions:delete"
)

// DeviceRegistrations is the registration service (devreg.Service).
type DeviceRegistrations interface {
	Create(ctx context.Context, subject, number, deviceID string, requested time.Time) (devreg.Registration, error)
	Refresh(ctx context.Context, number, id string, requested time.Time) (devreg.Registration, error)
	Delete(ctx context.Context, number, id string) error
}

// Registration serves webrtc-registration r2.2 (base
// /webrtc-registration/v0.3).
type Registration struct {
	BasePath string // with the version, e.g. "/webrtc-registration/v0.3"
	Verifier TokenVerifier
	Devices  DeviceRegistrations
}

type regSessionRequest struct {
	DeviceID               string `json:"deviceId"`
	RegistrationExpireTime string `json:"registrationExpireTime"`
}

type regInfo struct {
	PhoneNumber string `json:"phoneNumber"`
	RegStatus   string `json:"regStatus"`
}

type regSessionResponse struct {
	RegistrationID string   `json:"registrationId"`
	RegInfo        *regInfo `json:"regInfo,omitempty"`
	ExpiresAt      string   `json:"expiresAt,omitempty"`
}

func registrationResponse(r devreg.Registration) regSessionResponse {
	return regSessionResponse{RegistrationID: r.ID, RegInfo: &regInfo{PhoneNumber: r.PhoneNumber, RegStatus: "Registered"},
		ExpiresAt: rfc3339(r.ExpiresAt)}
}

// Handler serves the API, x-correlator and CAMARA errors included.
func (g *Registration) Handler() http.Handler {
	rt := NewRouter(g.BasePath)
	rt.Handle(http.MethodPost, "/sessions", Authenticate(g.Verifier,
		Access{AnyScope: []string{registrationScopeCreate}, Subscriber: true}, http.HandlerFunc(g.create)))
	rt.Handle(http.MethodPut, "/sessions/{registrationId}", Authenticate(g.Verifier,
		Access{AnyScope: []string{registrationScopeWrite}, Subscriber: true}, http.HandlerFunc(g.refresh)))
	rt.Handle(http.MethodDelete, "/sessions/{registrationId}", Authenticate(g.Verifier,
		Access{AnyScope: []string{registrationScopeDelete}, Subscriber: true}, http.HandlerFunc(g.delete)))
	return Correlate(rt)
}

// expireTime reads an optional RFC 3339 time with a zone.
func expireTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, ErrInvalidArgument.WithMessage("registrationExpireTime must be an RFC 3339 date-time with a time zone.")
	}
	return t, nil
}

// registrationError maps the service's errors once.
func registrationError(err error) error {
	switch {
	case errors.Is(err, devreg.ErrInvalidDevice):
		return ErrInvalidArgument.WithMessage("deviceId must be a UUID.")
	case errors.Is(err, devreg.ErrOutOfRange):
		return ErrOutOfRange.WithMessage("registrationExpireTime is earlier than the shortest registration allowed.")
	case errors.Is(err, devreg.ErrNotFound):
		return ErrNotFound.WithMessage("No registration with this registrationId for this subscriber.")
	case errors.Is(err, upstream.ErrNoAccount):
		return ErrPermissionDenied.WithMessage("The network has no SIP account for this phone number.")
	}
	return err
}

func (g *Registration) create(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	var req regSessionRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.DeviceID == "" {
		writeError(w, ErrInvalidArgument.WithMessage("deviceId is required."))
		return
	}
	requested, err := expireTime(req.RegistrationExpireTime)
	if err != nil {
		writeError(w, err)
		return
	}
	reg, err := g.Devices.Create(r.Context(), p.Subject, p.PhoneNumber, req.DeviceID, requested)
	if err != nil {
		writeError(w, registrationError(err))
		return
	}
	writeJSON(w, http.StatusOK, registrationResponse(reg))
}

func (g *Registration) refresh(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	var req regSessionRequest
	if r.ContentLength != 0 { // the body is optional: none means the default TTL
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	requested, err := expireTime(req.RegistrationExpireTime)
	if err != nil {
		writeError(w, err)
		return
	}
	reg, err := g.Devices.Refresh(r.Context(), p.PhoneNumber, r.PathValue("registrationId"), requested)
	if err != nil {
		writeError(w, registrationError(err))
		return
	}
	writeJSON(w, http.StatusOK, registrationResponse(reg))
}

func (g *Registration) delete(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	if err := g.Devices.Delete(r.Context(), p.PhoneNumber, r.PathValue("registrationId")); err != nil {
		writeError(w, registrationError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
