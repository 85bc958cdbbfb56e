package camara

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds a request body; larger bodies are 400 INVALID_ARGUMENT.
const MaxBodyBytes = 64 << 10

// decodeJSON reads a JSON object request body into v. Unknown fields are
// ignored. A Content-Type that is not JSON is 415; a missing, empty,
// oversized or malformed body is 400 INVALID_ARGUMENT.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return ErrUnsupportedMediaType
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return ErrInvalidArgument.WithMessage("Request body could not be read.")
	}
	if len(b) > MaxBodyBytes {
		return ErrInvalidArgument.WithMessage("Request body is larger than %d bytes.", MaxBodyBytes)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ErrInvalidArgument.WithMessage("Request body is missing.")
	}
	if b[0] != '{' {
		return ErrInvalidArgument.WithMessage("Request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return ErrInvalidArgument.WithMessage("Invalid type for %s.", te.Field)
		}
		return ErrInvalidArgument.WithMessage("Request body is not valid JSON.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrInvalidArgument.WithMessage("Request body has data after the JSON object.")
	}
	return nil
}

// acceptsJSON reports whether the request's Accept header allows a JSON
// answer (no header does).
func acceptsJSON(r *http.Request) bool {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return true
	}
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q := params["q"]; q == "0" || q == "0.0" || q == "0.00" || q == "0.000" {
				continue
			}
			switch mt {
			case "*/*", "application/*", "application/json":
				return true
			}
		}
	}
	return false
}
