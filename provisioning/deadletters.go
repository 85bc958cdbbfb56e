package provisioning

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"callpath/store"
)

// DeadLetters lists the CloudEvents that could not be delivered
// (store.DB does).
type DeadLetters interface {
	DeadLetters(ctx context.Context, limit int) ([]store.OutboxEvent, error)
}

// deadLetter is a dead letter as operators see it: never the sink token,
// and only the host of the sink (its path or query may carry secrets).
type deadLetter struct {
	EventID        string    `json:"eventId"`
	SubscriptionID string    `json:"subscriptionId"`
	Type           string    `json:"type"`
	SinkHost       string    `json:"sinkHost"`
	CreatedAt      time.Time `json:"createdAt"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"lastError"`
}

// DeadLetterRoutes adds GET /events/v1/dead-letters[?limit=N] (scope
// callpath:operator): the events delivery gave up on, oldest first.
func DeadLetterRoutes(mux *http.ServeMux, d DeadLetters, v TokenVerifier) {
	mux.HandleFunc("GET /events/v1/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		if !operator(w, r, v) {
			return
		}
		limit := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 10000 {
				writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "limit must be 1 to 10000")
				return
			}
			limit = n
		}
		evs, err := d.DeadLetters(r.Context(), limit)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "INTERNAL", "reading dead letters failed")
			return
		}
		out := make([]deadLetter, 0, len(evs))
		for _, e := range evs {
			host := ""
			if u, err := url.Parse(e.Sink); err == nil {
				host = u.Host
			}
			out = append(out, deadLetter{EventID: e.EventID, SubscriptionID: e.SubscriptionID, Type: e.Type, SinkHost: host,
				CreatedAt: e.CreatedAt, Attempts: e.Attempts, LastError: e.LastError})
		}
		writeJSON(w, http.StatusOK, out)
	})
}
