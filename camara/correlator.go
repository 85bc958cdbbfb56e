package camara

import (
	"net/http"
	"regexp"
)

// CorrelatorHeader is the CAMARA correlation header.
const CorrelatorHeader = "x-correlator"

// correlatorPattern is the XCorrelator schema of the r2.2 specs.
var correlatorPattern = regexp.MustCompile(`^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$`)

// Correlate checks the request's x-correlator and echoes it on every
// response next (or anything after it) writes, errors included. An invalid
// one is refused with 400 INVALID_ARGUMENT and not echoed.
func Correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values(CorrelatorHeader)
		if len(vals) > 1 || len(vals) == 1 && !correlatorPattern.MatchString(vals[0]) {
			writeError(w, ErrInvalidArgument.WithMessage("Invalid x-correlator header."))
			return
		}
		if len(vals) == 1 {
			w.Header().Set(CorrelatorHeader, vals[0])
		}
		next.ServeHTTP(w, r)
	})
}
