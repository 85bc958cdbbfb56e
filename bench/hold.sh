#!/usr/bin/env bash
# bench/hold.sh - memory per established call: holds N calls open through
# callpath (SIPp caller -> callpath -> SIPp callee, 127.0.0.1 only), waits
# until sipgo has dropped the transactions of the call set-up (it keeps them
# 32 s), forces a GC and reports heap and RSS per call against the idle
# baseline of the same process.
#
#   bench/hold.sh [--calls 10000] [--rate 1000] [--out DIR] [--port-base 26060]
set -euo pipefail
calls=10000 rate=1000 out="" base=26060
while [ $# -gt 0 ]; do
  case "$1" in
    --calls) calls=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --port-base) base=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
out=${out:-$(mktemp -d /tmp/siphold.XXXXXX)}
mkdir -p "$out"
gw=$base uas=$((base + 1)) uac=$((base + 2)) http=$((base + 3))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

(cd "$root" && go build -o "$out/callpath" ./cmd/callpath)
cat > "$out/callpath.yaml" <<YAML
log: {level: warn}
sip:
  listen: {udp: "127.0.0.1:$gw", tcp: ""}
  no_answer_timeout: 60s
http: {listen: "127.0.0.1:$http", pprof: true}
grpc: {listen: ""}
store: {path: "$out/callpath.db"}
media: {enabled: false}
routing: {routes: [{prefix: "", target: "sip:127.0.0.1:$uas"}]}
YAML
metric() { curl -s "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m {printf "%.0f\n", $2}'; }
gc() { curl -s -o /dev/null "http://127.0.0.1:$http/debug/pprof/heap?gc=1"; }

sipp -sf "$root/test/sipp/uas_basic.xml" -i 127.0.0.1 -p "$uas" -nostdin -l $((calls * 2)) \
  -trace_err -error_file "$out/uas_err.log" >"$out/uas.out" 2>&1 &
pids+=($!)
"$out/callpath" -config "$out/callpath.yaml" 2>"$out/callpath.log" &
cp=$!; pids+=($cp)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/readyz" >/dev/null && break; sleep 0.1; done
gc; sleep 1; gc
heap0=$(metric go_memstats_heap_inuse_bytes); rss0=$(metric process_resident_memory_bytes)

# Calls last 15 minutes: they stay up for the whole measurement.
sipp -sf "$root/test/sipp/uac_basic.xml" 127.0.0.1:$gw -s +4790000002 -i 127.0.0.1 -p "$uac" -nostdin \
  -r "$rate" -m "$calls" -l $((calls * 2)) -d 900000 -trace_err -error_file "$out/uac_err.log" >"$out/uac.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
  active=$(metric callpath_calls_active); [ "${active:-0}" -ge "$calls" ] && break; sleep 0.5
done
active=$(metric callpath_calls_active)
echo "active calls: $active (want $calls); waiting 40 s for set-up transactions to expire" >&2
sleep 40
gc; sleep 1; gc
heap1=$(metric go_memstats_heap_inuse_bytes); rss1=$(metric process_resident_memory_bytes)
goroutines=$(metric go_goroutines)
active=$(metric callpath_calls_active)
per_heap=$(( (heap1 - heap0) / active )); per_rss=$(( (rss1 - rss0) / active ))
{
  echo "| calls held | heap in use per call | RSS per call | goroutines | heap idle → held | RSS idle → held |"
  echo "|---|---|---|---|---|---|"
  awk -v a="$active" -v h="$per_heap" -v r="$per_rss" -v g="$goroutines" \
    -v h0=$((heap0 >> 20)) -v h1=$((heap1 >> 20)) -v r0=$((rss0 >> 20)) -v r1=$((rss1 >> 20)) \
    'BEGIN { printf "| %d | %.1f KiB | %.1f KiB | %d | %d → %d MiB | %d → %d MiB |\n", a, h/1024, r/1024, g, h0, h1, r0, r1 }'
} | tee "$out/summary.md"
