package relay

import (
	"context"
	"sync"
	"time"

	"callpath/store"
)

// ackBatcher turns the apps' acknowledgements into deletions from the
// store, many per transaction. An acknowledgement is not urgent: losing one
// in a crash only means the event is sent again, which the app tells by its
// id. Deleting each at once would double the store's writes per event.
type ackBatcher struct {
	st      Store
	metrics Metrics

	mu      sync.Mutex
	upTo    map[string]int64    // binding -> highest cumulative ack
	ids     map[string][]string // binding -> single acks
	kick    chan struct{}
	flushMu sync.Mutex // one flush at a time, so acks are applied in order
}

func newAckBatcher(st Store, m Metrics) *ackBatcher {
	return &ackBatcher{st: st, metrics: m, upTo: map[string]int64{}, ids: map[string][]string{}, kick: make(chan struct{}, 1)}
}

// maxIDAcksPerBinding bounds the single acks kept for a binding between
// flushes (an app acks at most its window).
const maxIDAcksPerBinding = 1024

func (b *ackBatcher) add(a store.RelayAck) {
	b.mu.Lock()
	if a.EventID != "" {
		if len(b.ids[a.BindingID]) < maxIDAcksPerBinding {
			b.ids[a.BindingID] = append(b.ids[a.BindingID], a.EventID)
		}
	} else if a.UpToSeq > b.upTo[a.BindingID] {
		b.upTo[a.BindingID] = a.UpToSeq
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// flush writes the pending acknowledgements; on failure they are kept for
// the next flush.
func (b *ackBatcher) flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	upTo, ids := b.upTo, b.ids
	if len(upTo) == 0 && len(ids) == 0 {
		b.mu.Unlock()
		return nil
	}
	b.upTo, b.ids = map[string]int64{}, map[string][]string{}
	b.mu.Unlock()

	acks := make([]store.RelayAck, 0, len(upTo)+len(ids))
	for binding, seq := range upTo {
		acks = append(acks, store.RelayAck{BindingID: binding, UpToSeq: seq})
	}
	for binding, list := range ids {
		for _, id := range list {
			acks = append(acks, store.RelayAck{BindingID: binding, EventID: id})
		}
	}
	n, err := b.st.AckRelayEvents(ctx, acks)
	if err != nil {
		for _, a := range acks {
			b.add(a)
		}
		return err
	}
	if n > 0 {
		b.metrics.Acked(int(n))
	}
	return nil
}

// run flushes every interval while there is something to flush, until
// ctx ends; then once more.
func (b *ackBatcher) run(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTimer(interval)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			if err := b.flush(fctx); err != nil {
				onError(err)
			}
			cancel()
			return
		case <-b.kick:
			// Gather what comes in during the interval into one
			// transaction.
			t.Reset(interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			if err := b.flush(fctx); err != nil {
				onError(err)
			}
			cancel()
		}
	}
}
