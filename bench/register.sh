#!/usr/bin/env bash
# bench/register.sh - keep many upstream registrations alive against Kamailio
# as the telco's registrar (test/kamailio/registrar.cfg, digest auth), on
# 127.0.0.1 only, and report what it costs callpath and Kamailio.
#
#   bench/register.sh --callpath-cmd "bin/callpath-bench" [options]
#
# callpath gets a number range in "register" mode pointing at Kamailio;
# COUNT accounts (+4790000000 …, password pw-<number>, which the registrar
# config accepts for any user) are added through the operator REST API.
# Once all are registered (Kamailio's usrloc:registered_users), the script
# measures for DURATION seconds: CPU of callpath and of Kamailio from
# /proc, callpath's RSS and Go heap, REGISTERs per second and their
# answers from callpath's metrics, and registrations by state. Bindings are
# granted EXPIRES seconds, so each is refreshed every EXPIRES - MARGIN s
# (at the latest at half-life) and Kamailio's nonces expire too (stale
# challenges are part of the load).
#
# Options:
#   --callpath-cmd "CMD"  a built callpath (make bench-register builds one)
#   --count N             registrations (default 10000)
#   --expires S           binding lifetime Kamailio grants (default 60)
#   --margin S            callpath's refresh margin (default 10)
#   --duration S          measured window (default 180)
#   --port-base N         ports N..N+2 (default 26060)
#   --out DIR             raw results (default: a new /tmp/regbench.*)
#
# Every process the script starts is stopped when it ends.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLPATH_CMD=""
COUNT=10000
EXPIRES=60
MARGIN=10
DURATION=180
PORT_BASE=26060
OUT=""
parse_args callpath-cmd=CALLPATH_CMD count=COUNT expires=EXPIRES margin=MARGIN duration=DURATION port-base=PORT_BASE out=OUT -- "$@"
[[ -n "$CALLPATH_CMD" ]] || die "--callpath-cmd is required"
for n in "$COUNT" "$EXPIRES" "$MARGIN" "$DURATION" "$PORT_BASE"; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
command -v kamailio >/dev/null || die "kamailio not found (scripts/deps.sh)"
command -v kamcmd >/dev/null || die "kamcmd not found (package kamailio)"
command -v curl >/dev/null || die "curl not found"
OUT="$(bench_out "$OUT" regbench)"
OUT="$(cd "$OUT" && pwd)"
HZ="$(getconf CLK_TCK)"

KAM_PORT=$PORT_BASE
SIP_PORT=$((PORT_BASE + 1))
HTTP_PORT=$((PORT_BASE + 2))
KAM_PID=""
CP_PID=""

cleanup() {
	for p in "$CP_PID" "$KAM_PID"; do
		[[ -n "$p" ]] || continue
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM # run the cleanup on a signal too

# ticks PID: CPU clock ticks (utime+stime) of PID and its descendants.
ticks() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
		{ pid = $1; s = $0; if (!match(s, /.*\) /)) next
		  s = substr(s, RLENGTH + 1); split(s, f, " "); pp[pid] = f[2]; t[pid] = f[12] + f[13] }
		END { in_[root] = 1; c = 1
		      while (c) { c = 0; for (p in pp) if (!(p in in_) && (pp[p] in in_)) { in_[p] = 1; c = 1 } }
		      for (p in in_) if (p in t) s2 += t[p]; print s2 + 0 }'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
metric() { # NAME: sum of the series of callpath's metric NAME (label filter in NAME allowed)
	curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%.0f\n", s }'
}
registered_at_kamailio() { # usrloc's statistic (asking for "usrloc:registered_users" returns nothing)
	kamcmd -s "unix:$OUT/kam/ctl" stats.get_statistics registered_users 2>/dev/null |
		awk -F'= ' '/registered_users/ { print $2 + 0; exit }'
}

log "results in $OUT"
mkdir -p "$OUT/kam"
kamailio -DD -E -f "$ROOT/test/kamailio/registrar.cfg" -m 512 -M 16 -Y "$OUT/kam" -w "$OUT/kam" \
	-A KAM_PORT=$KAM_PORT -A KAM_MIN_EXPIRES=10 -A KAM_MAX_EXPIRES=$EXPIRES -A KAM_DEBUG=1 \
	-A "KAM_CTL_SOCKET=\"unix:$OUT/kam/ctl\"" -A "KAM_RPC_FIFO=\"$OUT/kam/rpc.fifo\"" \
	-A "KAM_RPC_REPLY_DIR=\"$OUT/kam/\"" >"$OUT/kamailio.log" 2>&1 &
KAM_PID=$!

cat >"$OUT/callpath.yaml" <<EOF
log: {level: warn}
sip:
  listen: {udp: "127.0.0.1:$SIP_PORT", tcp: ""}
http: {listen: "127.0.0.1:$HTTP_PORT"}
grpc: {listen: ""}
store: {path: "$OUT/callpath.db"}
media: {enabled: false}
upstream:
  expires: ${EXPIRES}s
  refresh_margin: ${MARGIN}s
  ranges:
    - {prefix: "+4790", mode: register, domain: "callpath.test", registrar: "sip:127.0.0.1:$KAM_PORT"}
EOF
bash -c "exec $CALLPATH_CMD -config '$OUT/callpath.yaml'" >"$OUT/callpath.log" 2>&1 &
CP_PID=$!

for _ in $(seq 200); do
	curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz" && [[ -S "$OUT/kam/ctl" ]] && break
	kill -0 "$CP_PID" 2>/dev/null || { tail "$OUT/callpath.log" >&2; die "callpath exited"; }
	kill -0 "$KAM_PID" 2>/dev/null || { tail "$OUT/kamailio.log" >&2; die "kamailio exited"; }
	sleep 0.05
done
TOKEN=$(bash -c "exec $CALLPATH_CMD token -config '$OUT/callpath.yaml' -sub bench -scope callpath:operator")

log "adding $COUNT accounts through the operator API"
t0=$(date +%s.%N)
seq 0 $((COUNT - 1)) | awk '{ printf "+4790%06d\n", $1 }' |
	xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X PUT \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d '{"password": "pw-{}"}' "http://127.0.0.1:$HTTP_PORT/upstream/v1/accounts/{}" >"$OUT/put_codes.txt"
bad=$(grep -vc '^204$' "$OUT/put_codes.txt" || true)
[[ "$bad" -eq 0 ]] || die "$bad account PUTs failed (see $OUT/put_codes.txt)"

log "waiting until Kamailio holds $COUNT contacts"
deadline=$(($(date +%s) + 300))
while :; do
	n=$(registered_at_kamailio || echo 0)
	[[ "${n:-0}" -ge "$COUNT" ]] && break
	(($(date +%s) < deadline)) || die "only ${n:-0} of $COUNT registered after 300 s"
	sleep 0.5
done
t1=$(date +%s.%N)
log "all registered in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

log "measuring for $DURATION s"
cp0=$(ticks "$CP_PID"); k0=$(ticks "$KAM_PID")
r0=$(metric callpath_upstream_register_responses_total); f0=$(metric callpath_upstream_register_failures_total)
ok0=$(metric 'callpath_upstream_register_responses_total{code="200"}')
a0=$(metric 'callpath_upstream_register_responses_total{code="401"}')
s0=$(date +%s.%N)
min_registered=$COUNT
end=$(($(date +%s) + DURATION))
while (($(date +%s) < end)); do
	n=$(registered_at_kamailio || echo 0)
	((n < min_registered)) && min_registered=$n
	sleep 1
done
s1=$(date +%s.%N)
cp1=$(ticks "$CP_PID"); k1=$(ticks "$KAM_PID")
r1=$(metric callpath_upstream_register_responses_total); f1=$(metric callpath_upstream_register_failures_total)
ok1=$(metric 'callpath_upstream_register_responses_total{code="200"}')
a1=$(metric 'callpath_upstream_register_responses_total{code="401"}')
heap=$(metric go_memstats_heap_inuse_bytes)
registered=$(metric 'callpath_upstream_registrations{state="registered"}')
refreshing=$(metric 'callpath_upstream_registrations{state="refreshing"}')
failed=$(metric 'callpath_upstream_registrations{state="failed"}')
rss=$(rss_kib "$CP_PID")

awk -v hz="$HZ" -v w0="$s0" -v w1="$s1" -v cp=$((cp1 - cp0)) -v k=$((k1 - k0)) -v r=$((r1 - r0)) \
	-v f=$((f1 - f0)) -v ok=$((ok1 - ok0)) -v ch=$((a1 - a0)) -v n="$COUNT" -v expires="$EXPIRES" -v margin="$MARGIN" \
	-v heap="$heap" -v rss="$rss" -v reg="$registered" -v refr="$refreshing" -v fail="$failed" -v minreg="$min_registered" 'BEGIN {
	w = w1 - w0
	printf "### Upstream registrations kept alive against Kamailio\n\n"
	printf "%d registrations, bindings of %d s refreshed %d s before expiry, %.0f s window.\n\n", n, expires, margin, w
	printf "| measure | value |\n|---|---|\n"
	printf "| REGISTER final responses per second | %.0f (200: %.0f/s, 401: %.0f/s) |\n", r / w, ok / w, ch / w
	printf "| REGISTERs without answer | %d |\n", f
	printf "| fewest contacts at Kamailio during the window | %d |\n", minreg
	printf "| callpath registrations at the end: registered / refreshing / failed | %d / %d / %d |\n", reg, refr, fail
	printf "| callpath CPU | %.1f %% of one core |\n", 100 * cp / hz / w
	printf "| Kamailio CPU | %.1f %% of one core |\n", 100 * k / hz / w
	printf "| callpath RSS | %.0f MiB (%.1f KiB per registration) |\n", rss / 1024, rss / n
	printf "| callpath Go heap in use | %.0f MiB |\n", heap / 1048576
}' | tee "$OUT/summary.md"
