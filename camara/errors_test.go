package camara

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

type causeRecorder struct {
	*httptest.ResponseRecorder
	cause error
}

func (c *causeRecorder) RecordCause(err error) { c.cause = err }

// A 5xx answer says only INTERNAL; the cause goes to whoever logs the
// request. A 4xx is the client's doing and carries no cause to log.
func TestServerErrorsHandTheirCauseToTheLogger(t *testing.T) {
	disk := errors.New("disk I/O error")
	w := &causeRecorder{ResponseRecorder: httptest.NewRecorder()}
	writeError(w, fmt.Errorf("store subscription: %w", disk))
	if w.Code != http.StatusInternalServerError || !errors.Is(w.cause, disk) {
		t.Fatalf("status %d, cause %v", w.Code, w.cause)
	}
	if body := w.Body.String(); body != `{"status":500,"code":"INTERNAL","message":"Unknown server error. Typically a server bug."}` {
		t.Fatalf("body %s leaks or differs", body)
	}
	w = &causeRecorder{ResponseRecorder: httptest.NewRecorder()}
	writeError(w, ErrNotFound)
	if w.Code != http.StatusNotFound || w.cause != nil {
		t.Fatalf("status %d, cause %v", w.Code, w.cause)
	}
}
