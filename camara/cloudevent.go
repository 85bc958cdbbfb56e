package camara

import (
	"encoding/json"
	"time"

	"callpath/store"
)

// CloudEvent is a CloudEvents 1.0 event in structured JSON mode, as the
// webrtc-events callbacks carry it.
type CloudEvent struct {
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	SpecVersion     string `json:"specversion"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype,omitempty"`
	Data            any    `json:"data,omitempty"`
}

// outboxEvent builds the CloudEvent of type with data for subscription s
// and the outbox row that carries it to s's sink with s's token.
func outboxEvent(source string, s store.Subscription, typ string, data any, now time.Time) (store.OutboxEvent, error) {
	ev := CloudEvent{ID: newID(), Source: source, Type: typ, SpecVersion: "1.0",
		Time: now.UTC().Format(time.RFC3339Nano), DataContentType: "application/json", Data: data}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.OutboxEvent{}, err
	}
	return store.OutboxEvent{EventID: ev.ID, SubscriptionID: s.ID, Sink: s.Sink, SinkToken: s.SinkToken,
		Type: typ, Body: body, CreatedAt: now}, nil
}

// withSubscriptionID returns data as a JSON object with subscriptionId set
// (the events' examples carry the receiving subscription in data).
func withSubscriptionID(data any, id string) (map[string]any, error) {
	m := map[string]any{}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		if m == nil {
			m = map[string]any{}
		}
	}
	m["subscriptionId"] = id
	return m, nil
}
