#!/usr/bin/env bash
# bench/relay.sh - the WebSocket notification relay (`callpath relay`, as an
# app provider runs it) against the peer DESIGN §6 names: a bare
# gorilla/websocket server with one goroutine per connection
# (bench/relaypeer), loaded the same way in the same run by a separate load
# process (bench/relayload).
#
#   bench/relay.sh --callpath-cmd bin/callpath-bench [--conns 10000] [--rate 2000] [--duration 20] [--rounds 3]
#
# Each round, for each system in turn (the order alternating): start it
# fresh (callpath on an empty store), open CONNS WebSockets (callpath: one
# token and binding per subscriber, hello read), hold them, make the system
# collect its garbage (/debug/pprof/heap?gc=1) and measure its memory
# growth per connection (RSS, and Go heap + stacks in use), then POST
# events to the connections' sinks at RATE per second for DURATION seconds
# (after a 3 s warm-up; callpath: sink credential checked, event committed
# to SQLite before the 204, acknowledged by the client) and measure the
# latency from each POST to the event on its socket. Medians over rounds,
# with the ratios to the peer taken per round. Everything on 127.0.0.1;
# each run connects from its own loopback address so ports never run out.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLPATH_CMD=""
CONNS=10000
RATE=2000
DURATION=20
ROUNDS=3
PORT_BASE=26190
OUT=""
parse_args callpath-cmd=CALLPATH_CMD conns=CONNS rate=RATE duration=DURATION rounds=ROUNDS port-base=PORT_BASE out=OUT -- "$@"
[[ -n "$CALLPATH_CMD" ]] || die "--callpath-cmd is required"
OUT="$(bench_out "$OUT" relaybench)"

# Each process holds CONNS sockets plus its own files; Go raises the soft
# open-file limit to the hard one by itself, the shell must not stay below.
HARD=$(ulimit -Hn)
[[ "$HARD" == unlimited ]] || ((HARD >= CONNS + 1024)) || die "open-file limit $HARD is too low for $CONNS connections (need $((CONNS + 1024)))"
ulimit -n "$HARD"

PEER_PORT=$PORT_BASE
RELAY_PORT=$((PORT_BASE + 1))
PID=""
stop() { [[ -n "$PID" ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; PID=""; }
trap stop EXIT
trap 'exit 130' INT TERM

(cd "$ROOT" && go build -o "$OUT/relayload" ./bench/relayload && go build -o "$OUT/relaypeer" ./bench/relaypeer)
wait_http() { for _ in $(seq 400); do curl -s -o /dev/null -f "$1" && return 0; sleep 0.05; done; die "$1 not answering"; }

cat >"$OUT/relay.yaml" <<YAML
log: {level: warn}
http: {pprof: true} # /debug/pprof/heap?gc=1 before measuring memory
# The peer runs with Go's default GOGC (100); the relay process is given the
# same instead of the gateway's SIP-oriented 400.
runtime: {gc_percent: 100}
store: {path: "$OUT/relay.db"}
auth: {dev_issuer: {enabled: true, key_file: "$OUT/dev-issuer.key"}}
relay:
  listen: "127.0.0.1:$RELAY_PORT"
  public_url: "http://127.0.0.1:$RELAY_PORT"
  max_connections: $((CONNS + 100))
YAML

source_addr=10
run() { # system round -> JSON line
	local sys=$1 round=$2
	source_addr=$((source_addr + 1))
	local src="127.0.0.$source_addr"
	if [[ $sys == peer ]]; then
		"$OUT/relaypeer" -listen "127.0.0.1:$PEER_PORT" >"$OUT/peer.$round.log" 2>&1 &
		PID=$!
		wait_http "http://127.0.0.1:$PEER_PORT/healthz"
		"$OUT/relayload" -mode peer -ws "ws://127.0.0.1:$PEER_PORT/ws" -sinks "http://127.0.0.1:$PEER_PORT/sinks/" \
			-pid "$PID" -metrics "http://127.0.0.1:$PEER_PORT/metrics" -n "$CONNS" -rate "$RATE" -d "${DURATION}s" -source "$src" 2>>"$OUT/load.log"
	else
		rm -f "$OUT"/relay.db*
		bash -c "exec $CALLPATH_CMD relay -config '$OUT/relay.yaml'" >"$OUT/callpath.$round.log" 2>&1 &
		PID=$!
		wait_http "http://127.0.0.1:$RELAY_PORT/readyz"
		"$OUT/relayload" -mode callpath -ws "ws://127.0.0.1:$RELAY_PORT/relay/v1/connect" -key "$OUT/dev-issuer.key" \
			-pid "$PID" -metrics "http://127.0.0.1:$RELAY_PORT/metrics" -n "$CONNS" -rate "$RATE" -d "${DURATION}s" -source "$src" 2>>"$OUT/load.log"
	fi
	stop
}

log "results in $OUT"
: >"$OUT/runs.jsonl"
for ((round = 1; round <= ROUNDS; round++)); do
	order=(peer callpath)
	((round % 2 == 0)) && order=(callpath peer)
	for sys in "${order[@]}"; do
		log "round $round: $sys ($CONNS connections, $RATE events/s for ${DURATION}s)"
		run "$sys" "$round" | sed "s/^/{\"round\":$round,\"r\":/; s/\$/}/" >>"$OUT/runs.jsonl"
	done
done

python3 - "$OUT/runs.jsonl" "$CONNS" "$RATE" "$DURATION" "$ROUNDS" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for x in runs:
    by.setdefault(x["r"]["mode"], {})[x["round"]] = x["r"]
med = statistics.median
print(f"### WebSocket relay: {sys.argv[2]} connections, {sys.argv[3]} events/s for {sys.argv[4]} s, {sys.argv[5]} rounds (medians)\n")
print("| system | connections held | connect (s) | memory/conn, RSS (KiB) | Go heap+stacks/conn (KiB) | events/s | p50 (ms) | p99 (ms) | max (ms) | lost |")
print("|---|---|---|---|---|---|---|---|---|---|")
labels = {"peer": "bare gorilla/websocket, goroutine per conn", "callpath": "callpath relay (durable)"}
for mode in ["peer", "callpath"]:
    xs = list(by.get(mode, {}).values())
    if not xs:
        continue
    g = lambda k: med([x[k] for x in xs])
    print(f"| {labels[mode]} | {g('conns_held_end'):.0f} | {g('connect_s'):.1f} | {g('bytes_per_conn')/1024:.1f} | {g('go_bytes_per_conn')/1024:.1f} | "
          f"{g('events_per_s'):.0f} | {g('p50_ms'):.2f} | {g('p99_ms'):.2f} | {g('max_ms'):.1f} | {sum(x['lost'] for x in xs)} |")
rounds = sorted(set(by.get("peer", {})) & set(by.get("callpath", {})))
if rounds:
    ratio = lambda k: med([by["callpath"][r][k] / by["peer"][r][k] for r in rounds if by["peer"][r][k]])
    print(f"\ncallpath / peer, median of per-round ratios: memory/conn (RSS) {ratio('bytes_per_conn'):.2f}x, "
          f"Go heap+stacks/conn {ratio('go_bytes_per_conn'):.2f}x, p50 {ratio('p50_ms'):.2f}x, p99 {ratio('p99_ms'):.2f}x")
    print("\nPer round (callpath | peer): p99 ms " + ", ".join(f"{by['callpath'][r]['p99_ms']:.2f} | {by['peer'][r]['p99_ms']:.2f}" for r in rounds)
          + "; RSS KiB/conn " + ", ".join(f"{by['callpath'][r]['bytes_per_conn']/1024:.1f} | {by['peer'][r]['bytes_per_conn']/1024:.1f}" for r in rounds))
PY
