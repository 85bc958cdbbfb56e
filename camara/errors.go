package camara

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"callpath/auth"
	"callpath/store"
)

// Error is a CAMARA ErrorInfo: what every error response carries, always as
// application/json.
type Error struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Is makes errors.Is match on status and code, so a sentinel matches an
// error built with a different message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Code == e.Code
}

// WithMessage returns a copy of e with another message.
func (e *Error) WithMessage(format string, args ...any) *Error {
	return &Error{Status: e.Status, Code: e.Code, Message: fmt.Sprintf(format, args...)}
}

// The errors used across the CAMARA APIs.
var (
	ErrInvalidArgument      = &Error{http.StatusBadRequest, "INVALID_ARGUMENT", "Client specified an invalid argument, request body or query param."}
	ErrOutOfRange           = &Error{http.StatusBadRequest, "OUT_OF_RANGE", "Client specified an invalid range."}
	ErrUnauthenticated      = &Error{http.StatusUnauthorized, "UNAUTHENTICATED", "Request not authenticated due to missing, invalid, or expired credentials. A new authentication is required."}
	ErrPermissionDenied     = &Error{http.StatusForbidden, "PERMISSION_DENIED", "Client does not have sufficient permissions to perform this action."}
	ErrSubscriptionMismatch = &Error{http.StatusForbidden, "SUBSCRIPTION_MISMATCH", "Inconsistent access token for requested events subscription"}
	ErrInvalidTokenContext  = &Error{http.StatusForbidden, "INVALID_TOKEN_CONTEXT", "Information in the request is not consistent with the access token."}
	ErrQuotaExceeded        = &Error{http.StatusTooManyRequests, "QUOTA_EXCEEDED", "Out of resource quota."}
	ErrNotFound             = &Error{http.StatusNotFound, "NOT_FOUND", "The specified resource is not found."}
	ErrMethodNotAllowed     = &Error{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "The requested method is not allowed/supported on the target resource."}
	ErrNotAcceptable        = &Error{http.StatusNotAcceptable, "NOT_ACCEPTABLE", "The server cannot produce a response matching the content requested by the client through Accept-* headers."}
	ErrUnsupportedMediaType = &Error{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "The server refuses to accept the request because the payload format is in an unsupported format."}
	ErrMissingIdentifier    = &Error{http.StatusUnprocessableEntity, "MISSING_IDENTIFIER", "The device cannot be identified."}
	ErrInternal             = &Error{http.StatusInternalServerError, "INTERNAL", "Unknown server error. Typically a server bug."}
	ErrUnavailable          = &Error{http.StatusServiceUnavailable, "UNAVAILABLE", "Service Unavailable."}
)

// errorOf maps any Go error to the CAMARA error it is answered with; this
// is the one place where that mapping lives.
func errorOf(err error) *Error {
	var ce *Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, store.ErrSubscriptionNotFound):
		return ErrNotFound
	case errors.Is(err, auth.ErrUnauthenticated):
		return ErrUnauthenticated
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ErrUnavailable
	default:
		return ErrInternal
	}
}

// CauseRecorder is implemented by a ResponseWriter wrapper that wants the
// Go error behind a 5xx answer: the body says only INTERNAL or UNAVAILABLE,
// and whoever logs the request needs the cause.
type CauseRecorder interface {
	RecordCause(err error)
}

// writeError answers err as a CAMARA error body.
func writeError(w http.ResponseWriter, err error) {
	e := errorOf(err)
	if rec, ok := w.(CauseRecorder); ok && e.Status >= http.StatusInternalServerError {
		rec.RecordCause(err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer`)
	}
	writeJSON(w, e.Status, e)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"code":"INTERNAL","message":"response encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
