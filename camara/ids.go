package camara

import "github.com/google/uuid"

// newID returns a random UUID (version 4) string: subscription and event
// ids.
func newID() string { return uuid.NewString() }
