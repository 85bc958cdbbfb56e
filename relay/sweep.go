package relay

import (
	"context"
	"time"
)

// sweepBatch bounds the rows one sweep transaction touches, so that the
// store's writer is never held long.
const sweepBatch = 1000

// sweepLoop runs sweep every SweepInterval until ctx ends.
func (r *Relay) sweepLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sweep(ctx, time.Now())
		}
	}
}

// sweep drops events older than the queue's max age (telling the apps
// connected), deletes bindings idle for BindingIdleTTL and purges expired
// sink tokens.
func (r *Relay) sweep(ctx context.Context, now time.Time) {
	for {
		lost, err := r.cfg.Store.ExpireRelayEvents(ctx, now.Add(-r.cfg.Queue.MaxAge), sweepBatch)
		if err != nil {
			r.log.WithError(err).Warn("expiring old relay events failed")
			break
		}
		total := 0
		for binding, n := range lost {
			total += n
			if s := r.hub.session(binding); s != nil {
				s.tellExpired(n)
			}
		}
		if total > 0 {
			r.m.Expired("max_age", total)
			r.log.WithField("events", total).Info("relay events older than relay.queue.max_age dropped")
		}
		if total < sweepBatch {
			break
		}
	}
	for {
		idle, err := r.cfg.Store.IdleRelayBindings(ctx, now.Add(-r.cfg.BindingIdleTTL), sweepBatch)
		if err != nil {
			r.log.WithError(err).Warn("listing idle relay bindings failed")
			break
		}
		// A binding whose socket has been open all along is not idle.
		var gone, busy []string
		for _, id := range idle {
			if r.hub.session(id) != nil {
				busy = append(busy, id)
			} else {
				gone = append(gone, id)
			}
		}
		if err := r.cfg.Store.TouchRelayBindings(ctx, busy, now); err != nil {
			r.log.WithError(err).Warn("marking connected relay bindings seen failed")
			break
		}
		n, err := r.cfg.Store.DeleteRelayBindings(ctx, gone)
		if err != nil {
			r.log.WithError(err).Warn("deleting idle relay bindings failed")
			break
		}
		for _, id := range gone {
			// Connected since it was listed: it goes all the same.
			if s := r.hub.session(id); s != nil {
				s.close(CloseBindingGone, "binding expired", reasonBindingGone)
			}
		}
		if n > 0 {
			r.log.WithField("bindings", n).Info("idle relay bindings deleted (relay.binding_idle_ttl)")
		}
		if len(idle) < sweepBatch {
			break
		}
	}
	if _, err := r.cfg.Store.PurgeRelaySinkTokens(ctx, now); err != nil {
		r.log.WithError(err).Warn("purging expired sink tokens failed")
	}
}
