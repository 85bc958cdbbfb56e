package camara

import "github.com/google/uuid"

// newID returns a subscription or event id: a UUID of version 7, whose
// leading bits are its creation time, so that each new id goes at the end
// of the primary-key index instead of on a random page of it (random v4
// ids made every create dirty, and write to the WAL, another index page).
func newID() string { return uuid.Must(uuid.NewV7()).String() }
