package app

import (
	"context"

	"callpath/camara"
)

// PublishEvent publishes a webrtc-events notification (a session-invitation
// for an incoming call, …) to the subscriptions of ev.PhoneNumber that asked
// for it, and wakes the deliverer: it returns how many subscriptions got it.
func (a *App) PublishEvent(ctx context.Context, ev camara.Event) (int, error) {
	return a.camara.events.Publish(ctx, ev)
}
