package provisioning

import (
	"net/http"

	"callpath/registry"
	"callpath/routing"
)

// ScopeOperator lets a token read routing internals of any number (route
// explain): operators only.
const ScopeOperator = "callpath:operator"

// operator checks that r carries a valid token with the operator scope; it
// has answered the request when it reports false.
func operator(w http.ResponseWriter, r *http.Request, v TokenVerifier) bool {
	token, _ := bearerOf(r)
	if _, err := principalOf(r.Context(), v, token, ScopeOperator); err != nil {
		writeAuthError(w, err)
		return false
	}
	return true
}

// Explainer plans a call without placing it.
type Explainer interface {
	Explain(from, to string) routing.Explanation
}

// ExplainRoutes adds GET /routing/v1/explain?from=…&to=…, the REST twin of
// `callpath route explain`.
func ExplainRoutes(mux *http.ServeMux, e Explainer, v TokenVerifier) {
	mux.HandleFunc("GET /routing/v1/explain", func(w http.ResponseWriter, r *http.Request) {
		if !operator(w, r, v) {
			return
		}
		from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
		if !registry.ValidE164(from) || !registry.ValidE164(to) {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "from and to must be E.164 numbers such as +4790000001")
			return
		}
		writeJSON(w, http.StatusOK, e.Explain(from, to))
	})
}
