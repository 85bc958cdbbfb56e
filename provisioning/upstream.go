package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"callpath/registry"
	"callpath/upstream"
)

// UpstreamAccounts is what the operator API manages: the SIP accounts the
// telco issued per number (upstream.Accounts and its client).
type UpstreamAccounts interface {
	Put(ctx context.Context, c upstream.Credentials) error
	Delete(ctx context.Context, number string, all bool) error
	Status(number string) (upstream.Status, bool)
}

// accountStatus is an account as the API shows it: never the password.
type accountStatus struct {
	Number  string    `json:"number"`
	State   string    `json:"state"`
	Expires time.Time `json:"expires,omitzero"`
	Reason  string    `json:"reason,omitempty"`
}

// UpstreamRoutes adds the operator API of upstream SIP accounts (scope
// callpath:operator):
//
//	PUT    /upstream/v1/accounts/{number}  {"username": "…", "password": "…"}: store and register
//	GET    /upstream/v1/accounts/{number}  registration state
//	DELETE /upstream/v1/accounts/{number}[?all=true]  un-register (all: Contact: *) and forget
func UpstreamRoutes(mux *http.ServeMux, accounts UpstreamAccounts, v TokenVerifier) {
	authorized := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		if !operator(w, r, v) {
			return "", false
		}
		number := r.PathValue("number")
		if !registry.ValidE164(number) {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the number must be E.164, such as +4790000001")
			return "", false
		}
		return number, true
	}
	mux.HandleFunc("PUT /upstream/v1/accounts/{number}", func(w http.ResponseWriter, r *http.Request) {
		number, ok := authorized(w, r)
		if !ok {
			return
		}
		var body struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		if err := dec.Decode(&body); err != nil || body.Password == "" {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", `want {"username": "…", "password": "…"} with a password`)
			return
		}
		err := accounts.Put(r.Context(), upstream.Credentials{Number: number, Username: body.Username, Password: body.Password})
		switch {
		case errors.Is(err, upstream.ErrRouted):
			writeError(w, http.StatusUnprocessableEntity, "NOT_REGISTERED_RANGE", err.Error())
		case err != nil:
			writeError(w, http.StatusUnprocessableEntity, "INVALID_ARGUMENT", err.Error())
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("GET /upstream/v1/accounts/{number}", func(w http.ResponseWriter, r *http.Request) {
		number, ok := authorized(w, r)
		if !ok {
			return
		}
		st, found := accounts.Status(number)
		if !found {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no upstream registration for this number")
			return
		}
		writeJSON(w, http.StatusOK, accountStatus{Number: number, State: st.State.String(), Expires: st.Expires, Reason: st.Reason})
	})
	mux.HandleFunc("DELETE /upstream/v1/accounts/{number}", func(w http.ResponseWriter, r *http.Request) {
		number, ok := authorized(w, r)
		if !ok {
			return
		}
		all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
		if err := accounts.Delete(r.Context(), number, all); err != nil {
			writeError(w, http.StatusInternalServerError, "INTERNAL", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
