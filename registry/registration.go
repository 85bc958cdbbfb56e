// Package registry holds the virtual SIP registrations of DESIGN §3: which
// phone numbers have a PBX/TAS in their call path, how, and until when. It
// validates and applies the SipBreakout API's operations; the API servers
// (gRPC, REST) translate to and from it, the store keeps it, and the call
// path reads it from memory.
package registry

import (
	"fmt"
	"strings"
	"time"
)

// RouteType says how a registration puts its TAS into the call path. The
// values are those of the SipBreakout API's RouteType enum.
type RouteType int32

const (
	RouteUnspecified RouteType = 0
	RouteLoop        RouteType = 1
	RouteFork        RouteType = 2
	RouteFallback    RouteType = 3
	RouteLoopMO      RouteType = 4
	RouteLoopMT      RouteType = 5
	RouteIngress     RouteType = 6
)

var routeNames = map[RouteType]string{
	RouteUnspecified: "UNSPECIFIED", RouteLoop: "LOOP", RouteFork: "FORK", RouteFallback: "FALLBACK",
	RouteLoopMO: "LOOP_MO", RouteLoopMT: "LOOP_MT", RouteIngress: "INGRESS",
}

func (t RouteType) String() string {
	if n, ok := routeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("RouteType(%d)", int32(t))
}

// ParseRouteType reads "LOOP", "loop" or the API's "ROUTE_TYPE_LOOP".
func ParseRouteType(s string) (RouteType, bool) {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "ROUTE_TYPE_")
	for t, n := range routeNames {
		if n == s {
			return t, true
		}
	}
	return RouteUnspecified, false
}

// Registration is one number's TAS and how calls involve it.
type Registration struct {
	PhoneNumber string // E.164 with "+"
	RouteType   RouteType
	SIPURI      string // the TAS, normalised (see ParseTASURI)
	MOPrefix    string // mobile_originating_prefix
	MTPrefix    string // mobile_terminating_prefix
	Owner       string // the OAuth2 client or user that created it
	UpdatedAt   time.Time
	ExpiresAt   time.Time
}

// Active reports whether the registration still acts at now.
func (r Registration) Active(now time.Time) bool { return now.Before(r.ExpiresAt) }
