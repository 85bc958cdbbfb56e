package relay

import (
	"context"
	"time"

	"callpath/store"
)

// Store keeps the bindings, their sink tokens and their queues durably;
// *store.DB implements it (store/relay.go).
type Store interface {
	// AttachRelayBinding finds or creates the binding of a connecting app
	// and adds its new sink token.
	AttachRelayBinding(ctx context.Context, a store.RelayAttach) (store.RelayBinding, store.RelayAttached, error)
	// CheckRelaySinkToken returns the token's expiry, or
	// store.ErrRelayBindingNotFound or store.ErrRelayTokenInvalid.
	CheckRelaySinkToken(ctx context.Context, bindingID string, hash []byte, now time.Time) (time.Time, error)
	// AppendRelayEvent commits one event to a binding's queue.
	AppendRelayEvent(ctx context.Context, e store.RelayEvent, limits store.RelayQueueLimits) (store.RelayAppended, error)
	// RelayEvents reads a binding's queue after a seq, in order.
	RelayEvents(ctx context.Context, bindingID string, afterSeq int64, limit int) ([]store.RelayEvent, error)
	AckRelayEvents(ctx context.Context, acks []store.RelayAck) (int64, error)
	ExpireRelayEvents(ctx context.Context, cutoff time.Time, limit int) (map[string]int, error)
	ReportedRelayExpired(ctx context.Context, bindingID string, n int) error
	TouchRelayBindings(ctx context.Context, ids []string, now time.Time) error
	IdleRelayBindings(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
	DeleteRelayBindings(ctx context.Context, ids []string) (int64, error)
	PurgeRelaySinkTokens(ctx context.Context, now time.Time) (int64, error)
}

var _ Store = (*store.DB)(nil)
