// Package routing decides what the B2BUA does with a call. It is pure decision
// logic: no I/O, no SIP library, no clock of its own, so every rule is a row
// in a table test. The static table of this file maps called numbers to
// destinations; the virtual registrations slot in as further Deciders.
package routing

import (
	"sort"
	"strings"
)

// Route maps numbers to a destination URI. A route matches by Prefix, or, when
// RangeFrom and RangeTo are set, by every number of their length between them
// (inclusive).
type Route struct {
	Prefix    string
	RangeFrom string
	RangeTo   string
	Target    string
}

// StaticTable is a longest-match routing table built once from config.
type StaticTable struct {
	routes        []Route // most specific first
	defaultTarget string
}

// NewStaticTable orders routes so that the most specific one wins: ranges and
// prefixes are compared by how many leading characters they fix.
func NewStaticTable(routes []Route, defaultTarget string) *StaticTable {
	sorted := append([]Route(nil), routes...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return specificity(sorted[i]) > specificity(sorted[j])
	})
	return &StaticTable{routes: sorted, defaultTarget: defaultTarget}
}

// specificity is the number of fixed leading characters of a route. A range
// fixes its common prefix plus a fraction, so a range beats the prefix it
// lies in but loses to a longer prefix.
func specificity(r Route) int {
	if r.RangeFrom == "" {
		return 2 * len(r.Prefix)
	}
	common := 0
	for common < len(r.RangeFrom) && r.RangeFrom[common] == r.RangeTo[common] {
		common++
	}
	return 2*common + 1
}

func (r Route) matches(number string) bool {
	if r.RangeFrom == "" {
		return strings.HasPrefix(number, r.Prefix)
	}
	return len(number) == len(r.RangeFrom) && number >= r.RangeFrom && number <= r.RangeTo
}

// Lookup returns the target for a called number and whether one was found.
func (t *StaticTable) Lookup(number string) (string, bool) {
	for _, r := range t.routes {
		if r.matches(number) {
			return r.Target, true
		}
	}
	if t.defaultTarget != "" {
		return t.defaultTarget, true
	}
	return "", false
}

// Decide routes a call with the static table: one leg to the target, or a
// rejection when nothing matches.
func (t *StaticTable) Decide(call Call) Decision {
	target, ok := t.Lookup(call.To)
	if !ok {
		return Reject(404, "Not Found")
	}
	return Forward(Target{URI: target})
}
