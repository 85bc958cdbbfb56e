#!/usr/bin/env bash
# bench/api.sh - requests per second and latency of the CAMARA API's
# durable creates, against the peer DESIGN §6 names: a bare net/http JSON
# handler doing one SQLite WAL insert per request (bench/apibare), loaded
# the same way in the same run (bench/apiload, C connections, D seconds).
#
#   bench/api.sh --callpath-cmd "bin/callpath-bench" [--conns 64] [--duration 20] [--rounds 3] [--subscribers 10000]
#
# Measured, each round in turn: the bare handler; callpath's POST
# /webrtc-events/v0.2/subscriptions (registration-ends of each subscriber's
# device registration, sink https on a listed loopback range: token
# checked, body validated, registration looked up, quota counted, stored);
# callpath's POST /webrtc-registration/v0.3/sessions (each subscriber's
# device again: each create replaces the last), requests spread over
# SUBSCRIBERS subscribers. Medians over rounds are printed with the
# ratios to the bare handler. Everything on 127.0.0.1.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLPATH_CMD=""
CONNS=64
DURATION=20
ROUNDS=3
SUBSCRIBERS=10000
PORT_BASE=26180
OUT=""
parse_args callpath-cmd=CALLPATH_CMD conns=CONNS duration=DURATION rounds=ROUNDS subscribers=SUBSCRIBERS port-base=PORT_BASE out=OUT -- "$@"
[[ -n "$CALLPATH_CMD" ]] || die "--callpath-cmd is required"
OUT="$(bench_out "$OUT" apibench)"
BARE_PORT=$PORT_BASE
HTTP_PORT=$((PORT_BASE + 1))
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$ROOT" && go build -o "$OUT/apibare" ./bench/apibare && go build -o "$OUT/apiload" ./bench/apiload && go build -o "$OUT/apiprep" ./bench/apiprep)
wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; die "$1 not answering"; }

log "results in $OUT"
"$OUT/apibare" -listen "127.0.0.1:$BARE_PORT" -db "$OUT/bare.db" >"$OUT/apibare.log" 2>&1 &
PIDS+=($!)
cat >"$OUT/callpath.yaml" <<YAML
log: {level: warn}
sip: {listen: {udp: "127.0.0.1:0", tcp: ""}}
http: {listen: "127.0.0.1:$HTTP_PORT"}
grpc: {listen: ""}
store: {path: "$OUT/callpath.db"}
media: {enabled: false}
camara:
  # The shipped quota (max_subscriptions 100): three rounds of creates
  # spread over 10,000 subscribers stay under it, as a real population's
  # few subscriptions per device would.
  sinks: {allow_cidrs: ["127.0.0.0/8"]}
YAML
bash -c "exec $CALLPATH_CMD -config '$OUT/callpath.yaml'" >"$OUT/callpath.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$HTTP_PORT/healthz"
# SUBSCRIBERS subscribers, each with a device registration and a token:
# the requests go to them in turn, as from many apps (one subscriber's
# subscriptions are capped at camara.max_subscriptions).
log "preparing $SUBSCRIBERS subscribers"
"$OUT/apiprep" -key "$OUT/dev-issuer.key" -api "http://127.0.0.1:$HTTP_PORT" -n "$SUBSCRIBERS" -kind subscription -out "$OUT/subscriptions.txt"
"$OUT/apiprep" -key "$OUT/dev-issuer.key" -api "http://127.0.0.1:$HTTP_PORT" -n "$SUBSCRIBERS" -kind registration -out "$OUT/registrations.txt"

run() { # name url requests-file|body expect -> JSON line
	local src=(-body "$3")
	[[ -f "$3" ]] && src=(-requests "$3")
	"$OUT/apiload" -url "$2" "${src[@]}" -c "$CONNS" -d "${DURATION}s" -expect "$4" -json |
		sed "s/^/{\"name\":\"$1\",\"r\":/; s/\$/}/"
}
: >"$OUT/runs.jsonl"
for ((round = 1; round <= ROUNDS; round++)); do
	log "round $round: bare handler"
	run bare "http://127.0.0.1:$BARE_PORT/items" '{"deviceId":"x","n":1}' 201 >>"$OUT/runs.jsonl"
	log "round $round: subscription create"
	run subscription "http://127.0.0.1:$HTTP_PORT/webrtc-events/v0.2/subscriptions" "$OUT/subscriptions.txt" 201 >>"$OUT/runs.jsonl"
	log "round $round: registration create"
	run registration "http://127.0.0.1:$HTTP_PORT/webrtc-registration/v0.3/sessions" "$OUT/registrations.txt" 200 >>"$OUT/runs.jsonl"
done
python3 - "$OUT/runs.jsonl" "$CONNS" "$DURATION" "$ROUNDS" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["name"], []).append(r["r"])
med = lambda xs: statistics.median(xs)
print(f"### CAMARA API: durable creates, {sys.argv[2]} connections, {sys.argv[3]} s per run, {sys.argv[4]} rounds (medians)\n")
print("| what | requests/s | p50 (ms) | p99 (ms) | errors | requests/s vs bare | p99 vs bare |")
print("|---|---|---|---|---|---|---|")
# Ratios are taken per round (each system against the bare handler run just
# before it, under the same background load), then their median is shown.
bare = by["bare"]
for name, label in [("bare", "bare net/http + one SQLite insert"), ("subscription", "POST subscriptions"), ("registration", "POST sessions (registration)")]:
    xs = by[name]
    rps, p50, p99 = med([x["rps"] for x in xs]), med([x["p50_ms"] for x in xs]), med([x["p99_ms"] for x in xs])
    errs = sum(x["errors"] for x in xs)
    rr = med([x["rps"] / b["rps"] for x, b in zip(xs, bare)])
    pr = med([x["p99_ms"] / b["p99_ms"] for x, b in zip(xs, bare)])
    print(f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {errs} | {rr:.2f} | {pr:.2f} |")
PY
