package provisioning

import (
	"context"
	"net/http"
	"strconv"

	"github.com/sirupsen/logrus"

	"callpath/registry"
)

// SubscriptionTerminator ends the CAMARA event subscriptions of a
// subscriber, or of all when number is "" (camara.Events does).
type SubscriptionTerminator interface {
	Terminate(ctx context.Context, number, description string) (int, error)
}

// terminationDescription is what the subscribers' apps read in
// subscription-ended.terminationDescription.
const terminationDescription = "The operator stopped the notification service"

// TerminateRoutes adds DELETE /events/v1/subscriptions?phoneNumber=+E164
// or ?all=true (scope callpath:operator): the operator stops the service
// for one subscriber (a contract ended) or for everyone (the service is
// withdrawn). Each open subscription ends with subscription-ended
// NETWORK_TERMINATED; the answer says how many: {"ended": n}. Without
// either parameter nothing is ended: "all" must be asked for in words.
func TerminateRoutes(mux *http.ServeMux, t SubscriptionTerminator, v TokenVerifier, log *logrus.Entry) {
	mux.HandleFunc("DELETE /events/v1/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		if !operator(w, r, v) {
			return
		}
		q := r.URL.Query()
		number, all := q.Get("phoneNumber"), q.Get("all")
		switch {
		case number != "" && all != "":
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "give phoneNumber or all=true, not both")
			return
		case number != "" && !registry.ValidE164(number):
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "phoneNumber must be E.164, such as +4790000001")
			return
		case number == "" && all != "true":
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "give phoneNumber=+E164, or all=true to end every subscription")
			return
		}
		n, err := t.Terminate(r.Context(), number, terminationDescription)
		if err != nil {
			log.WithError(err).WithFields(logrus.Fields{"phone_number": number, "ended": n}).Error("ending subscriptions failed")
			// Those ended so far stay ended; asking again ends the rest.
			writeError(w, http.StatusInternalServerError, "INTERNAL", "ending subscriptions failed after "+strconv.Itoa(n))
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"ended": n})
	})
}
