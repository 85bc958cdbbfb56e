#!/usr/bin/env bash
# bench/sip.sh - SIP load ramp through Kamailio (the reference proxy) and/or
# callpath, with SIPp as caller and callee, on 127.0.0.1 only.
#
#   bench/sip.sh [options] [kamailio] [callpath] [callpath-fork]
#
# callpath-fork is a second callpath where the called number has a FORK
# registration (SipBreakout API, set up through the REST mirror with a dev
# token): every call rings the destination (which answers) and a SIPp TAS
# (which rings and gets CANCEL); the summary gives its ratio to callpath.
#
# Both systems run side by side during the whole ramp (each with its own
# ports and its own SIPp callee); for every offered rate they are measured one
# after the other, alternating which goes first, so that drift of this shared
# machine spreads over both. Per step: calls attempted/ok/failed (SIPp's
# statistics of the load callers and of the probe), failed %, CPU of the
# system's process tree (/proc/<pid>/stat utime+stime over the step), CPU of
# all SIPp processes, memory (PSS), and setup time p50/p99 (INVITE sent -> 200
# received) measured by a separate low-rate SIPp "probe" caller from the
# microsecond timestamps of its -trace_shortmsg log. (SIPp's own -trace_rtt
# and screen response times use CLOCK_MONOTONIC_COARSE: 4 ms steps here.)
#
# At the end `go run ./bench/sipreport OUT` prints the summary as markdown
# (also written to OUT/summary.md, raw figures in OUT/steps.csv): highest
# rate with < 0.1 % failed calls, setup p50/p99 there and at half that rate
# (an extra step is run at the half rate when the ramp did not have it), CPU
# per 1,000 calls/s, and callpath/Kamailio ratios when both ran.
#
# Options:
#   kamailio | callpath | callpath-fork
#                           systems to measure (default: kamailio, plus
#                           callpath when --callpath-cmd is given)
#   --callpath-cmd "CMD"    command line of a built callpath binary; the script
#                           appends "-config FILE" with FILE generated from
#                           bench/callpath-bench.yaml in a temporary directory
#   --rates "R1 R2 ..."     offered calls/s per step (default "500 1000 2000
#                           3000 4000 5000 6000 8000")
#   --step SECONDS          step length (default 40: sipgo keeps transactions
#                           32 s, shorter steps overstate a Go stack's rate)
#   --quick                 10 s steps
#   --rounds N              repeat the ramp N times; the summary takes medians
#   --out DIR               where raw results go (default: a new /tmp/sipbench.*)
#   --transport udp|tcp     (default udp)
#   --kam-children N        Kamailio UDP/TCP workers (default 2: fastest on
#                           the 2-core machine; 4 cost ~15 %, 8 ~21 % of a core
#                           per 1,000 calls/s against ~12 % with 2)
#   --kam-shm MB            Kamailio shared memory (default 2048)
#   --probe-rate N          latency probe calls/s, part of the offered rate
#                           (default 100)
#   --uac-max-rate N        calls/s per SIPp caller process; more processes are
#                           started above it (default 6000)
#   --warmup SECONDS        unrecorded load at 200 calls/s before the ramp (default 5)
#   --settle SECONDS        idle time between steps (default 3)
#   --idle-wait SECONDS     before each step, wait up to this long for the rest
#                           of the machine to go quiet (other processes using
#                           less than --idle-max % of one core over 1 s), since
#                           this machine may be shared (default 60; 0: off).
#                           Each step also records the CPU used by processes
#                           other than the system and SIPp ("others" column).
#   --idle-max PCT          (default 15)
#   --stop-fail PCT         stop a system's ramp after a step with at least
#                           PCT % failed calls (default 5)
#   --max-fail PCT          "sustained" threshold for the summary (default 0.1)
#   --no-half               do not add a step at half the highest sustained rate
#   --port-base N           ports N..N+59 are used (default 25060)
#
# Every process the script starts is stopped when it ends or is interrupted.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIPP_DIR="$ROOT/test/sipp"
KAM_CFG="$ROOT/bench/kamailio/kamailio.cfg"
CP_TEMPLATE="$ROOT/bench/callpath-bench.yaml"

RATES="500 1000 2000 3000 4000 5000 6000 8000"
STEP=40
ROUNDS=1
OUT=""
CALLPATH_CMD=""
TRANSPORT=udp
KAM_CHILDREN=2
KAM_SHM=2048
PROBE_RATE=100
UAC_MAX_RATE=6000
WARMUP=5
SETTLE=3
IDLE_WAIT=60
IDLE_MAX=15
STOP_FAIL=5
MAX_FAIL=0.1
HALF=1
PORT_BASE=25060
SYSTEMS=()


while [[ $# -gt 0 ]]; do
	case "$1" in
	kamailio | callpath | callpath-fork) SYSTEMS+=("$1"); shift ;;
	--callpath-cmd) CALLPATH_CMD="${2:?}"; shift 2 ;;
	--rates) RATES="${2:?}"; shift 2 ;;
	--step) STEP="${2:?}"; shift 2 ;;
	--quick) STEP=10; shift ;;
	--rounds) ROUNDS="${2:?}"; shift 2 ;;
	--out) OUT="${2:?}"; shift 2 ;;
	--transport) TRANSPORT="${2:?}"; shift 2 ;;
	--kam-children) KAM_CHILDREN="${2:?}"; shift 2 ;;
	--kam-shm) KAM_SHM="${2:?}"; shift 2 ;;
	--probe-rate) PROBE_RATE="${2:?}"; shift 2 ;;
	--uac-max-rate) UAC_MAX_RATE="${2:?}"; shift 2 ;;
	--warmup) WARMUP="${2:?}"; shift 2 ;;
	--settle) SETTLE="${2:?}"; shift 2 ;;
	--idle-wait) IDLE_WAIT="${2:?}"; shift 2 ;;
	--idle-max) IDLE_MAX="${2:?}"; shift 2 ;;
	--stop-fail) STOP_FAIL="${2:?}"; shift 2 ;;
	--max-fail) MAX_FAIL="${2:?}"; shift 2 ;;
	--no-half) HALF=0; shift ;;
	--port-base) PORT_BASE="${2:?}"; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

if [[ ${#SYSTEMS[@]} -eq 0 ]]; then
	SYSTEMS=(kamailio)
	[[ -n "$CALLPATH_CMD" ]] && SYSTEMS+=(callpath)
fi
case "$TRANSPORT" in udp) TFLAG=u1 ;; tcp) TFLAG=t1 ;; *) die "--transport udp|tcp" ;; esac
for n in "$STEP" "$ROUNDS" "$KAM_CHILDREN" "$KAM_SHM" "$PROBE_RATE" "$UAC_MAX_RATE" "$WARMUP" "$SETTLE" "$PORT_BASE" "$IDLE_WAIT" "$IDLE_MAX"; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
for r in $RATES; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "bad rate: $r"; done
command -v sipp >/dev/null || die "sipp not found (apt-get install sip-tester)"
for s in "${SYSTEMS[@]}"; do
	case "$s" in
	kamailio) command -v kamailio >/dev/null || die "kamailio not found (apt-get install kamailio)" ;;
	callpath | callpath-fork) [[ -n "$CALLPATH_CMD" ]] || die "$s needs --callpath-cmd" ;;
	esac
done
OUT="$(bench_out "$OUT" sipbench)"
OUT="$(cd "$OUT" && pwd)"

HZ="$(getconf CLK_TCK)"

# Ports: system, its callee, then the callers.
declare -A SUT_PORT=([kamailio]=$PORT_BASE [callpath]=$((PORT_BASE + 20)) [callpath-fork]=$((PORT_BASE + 50)))
declare -A UAS_PORT=([kamailio]=$((PORT_BASE + 10)) [callpath]=$((PORT_BASE + 30)) [callpath-fork]=$((PORT_BASE + 51)))
TAS_PORT=$((PORT_BASE + 52)) # the FORK TAS of callpath-fork, on its own address:
TAS_IP=127.0.0.2             # callpath tells a TAS's calls from others by it
FORK_HTTP_PORT=$((PORT_BASE + 53)) # callpath-fork's REST API
# The number every load call dials; callpath-fork registers it as FORK.
CALLED=+4790000002
UAC_PORT0=$((PORT_BASE + 40)) # .. +48
PROBE_PORT=$((PORT_BASE + 49))
declare -A SUT_PID=()
declare -A CP_TMP=()

now() { date +%s.%N; }

# ---------------------------------------------------------------- processes

STEP_PIDS=() # SIPp processes of the current step

stop_pid() { # pid [signal]: signal, wait up to 5 s, then SIGKILL; reap
	local pid=$1 sig=${2:-TERM} i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# SIPp's "q": a first SIGUSR1 stops new calls, a second aborts running ones;
# it then writes its statistics. (Its SIGTERM handler can hang.)
stop_sipp() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -USR1 "$pid" 2>/dev/null || true
	for ((i = 0; i < 4; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -USR1 "$pid" 2>/dev/null || true
	stop_pid "$pid" USR1
}

cleanup() {
	local p
	for p in "${STEP_PIDS[@]}"; do stop_sipp "$p"; done
	STEP_PIDS=()
	for p in "${SUT_PID[@]}"; do stop_pid "$p" TERM; done
	SUT_PID=()
	for p in "${CP_TMP[@]}"; do rm -rf "$p"; done
	CP_TMP=()
}
trap cleanup EXIT
# Only the main shell: a signal sent to the whole process group (as `timeout`
# does) also reaches $(...) subshells, which must not run the cleanup.
trap 'if [[ $BASHPID == "$$" ]]; then log "interrupted"; exit 130; fi' INT TERM

# port_bound udp|tcp PORT: is 127.0.0.x:PORT (or *:PORT) bound (TCP: listening)?
port_bound() {
	local hex
	hex=$(printf '%04X' "$2")
	awk -v p=":$hex" -v tcp="$([[ $1 == tcp ]] && echo 1 || echo 0)" '
		NR > 1 && substr($2, length($2) - 4) == p && ($2 ~ /^(..00007F|00000000):/) && (!tcp || $4 == "0A") { f = 1 }
		END { exit !f }' "/proc/net/$1"
}

wait_bound() { # proto port pid what [timeout_s]
	local deadline
	deadline=$(($(date +%s) + ${5:-15}))
	until port_bound "$1" "$2"; do
		kill -0 "$3" 2>/dev/null || { log "$4 exited before binding $1 port $2"; return 1; }
		(($(date +%s) < deadline)) || { log "$4 did not bind $1 port $2"; return 1; }
		sleep 0.02
	done
}

# tree_stat PID: "ticks pss_kib pids" over PID and all its descendants: CPU
# clock ticks (utime+stime) and proportional set size (shared memory, like
# Kamailio's, counted once), pids comma-separated.
tree_stat() {
	local ticks pids pss f v
	read -r ticks pids < <(cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
		{
			pid = $1; s = $0
			if (!match(s, /.*\) /)) next
			s = substr(s, RLENGTH + 1); split(s, f, " ")
			pp[pid] = f[2]; t[pid] = f[12] + f[13]
		}
		END {
			in_[root] = 1; changed = 1
			while (changed) { changed = 0; for (p in pp) if (!(p in in_) && (pp[p] in in_)) { in_[p] = 1; changed = 1 } }
			for (p in in_) { if (p in t) { tt += t[p]; l = l (l == "" ? "" : ",") p } }
			printf "%d %s\n", tt, l
		}')
	pss=0
	for f in ${pids//,/ }; do
		v=$(awk '/^Pss:/ { print $2; exit }' "/proc/$f/smaps_rollup" 2>/dev/null || true)
		pss=$((pss + ${v:-0}))
	done
	echo "$ticks $pss $pids"
}

# children_cpu FILE: CPU seconds (user+system) of this shell's reaped children,
# from the output of the `times` builtin saved in FILE. (`times` must run in
# this shell, not in a $(...) subshell, which has no children of its own.)
children_cpu() {
	awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); s += a[1] * 60 + a[2] }; printf "%.3f\n", s }' "$1"
}

# busy_ticks: CPU clock ticks the whole machine spent busy (all cores), /proc/stat.
busy_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# wait_quiet: wait (up to IDLE_WAIT s) until processes other than our
# systems use less than IDLE_MAX % of one core over one second.
wait_quiet() {
	((IDLE_WAIT > 0)) || return 0
	local deadline b0 b1 s0 s1 t0 t1 p v other
	deadline=$(($(date +%s) + IDLE_WAIT))
	while :; do
		t0=$(now)
		b0=$(busy_ticks)
		s0=0
		for p in "${SUT_PID[@]}"; do read -r v _ < <(tree_stat "$p"); s0=$((s0 + v)); done
		sleep 1
		t1=$(now)
		b1=$(busy_ticks)
		s1=0
		for p in "${SUT_PID[@]}"; do read -r v _ < <(tree_stat "$p"); s1=$((s1 + v)); done
		other=$(awk -v b=$((b1 - b0 - (s1 - s0))) -v hz="$HZ" -v a="$t0" -v z="$t1" 'BEGIN { printf "%d", 100 * b / hz / (z - a) }')
		if ((other < IDLE_MAX)); then return 0; fi
		if (($(date +%s) >= deadline)); then
			log "machine still busy (others use ${other} % of a core); measuring anyway, see the 'others' column"
			return 0
		fi
	done
}

# stat_sum FILE...: "created ok failed" summed over SIPp -trace_stat files.
stat_sum() {
	local f
	for f in "$@"; do
		[[ -s "$f" ]] || continue
		awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { l = $0 }
			END { n = split(l, v, ";"); print v[c["TotalCallCreated"]] + 0, v[c["SuccessfulCall(C)"]] + 0, v[c["FailedCall(C)"]] + 0 }' "$f"
	done | awk '{ a += $1; b += $2; c += $3 } END { print a + 0, b + 0, c + 0 }'
}

start_kamailio() {
	local dir="$OUT/kamailio"
	mkdir -p "$dir/run"
	log "kamailio: port ${SUT_PORT[kamailio]}, callee port ${UAS_PORT[kamailio]}, $KAM_CHILDREN children, tlsf, ${KAM_SHM} MB"
	kamailio -DD -E -f "$KAM_CFG" -x tlsf -X tlsf -m "$KAM_SHM" -M 16 -Y "$dir/run" -w "$dir/run" \
		-A "KAM_PORT=${SUT_PORT[kamailio]}" -A "KAM_DOWNSTREAM=\"sip:127.0.0.1:${UAS_PORT[kamailio]}\"" \
		-A "KAM_CHILDREN=$KAM_CHILDREN" >"$dir/kamailio.log" 2>&1 &
	SUT_PID[kamailio]=$!
	wait_bound udp "${SUT_PORT[kamailio]}" "${SUT_PID[kamailio]}" kamailio || { tail -20 "$dir/kamailio.log" >&2; exit 1; }
}

# run_callpath NAME HTTP_LISTEN: start a callpath as system NAME.
run_callpath() {
	local name=$1 http=$2 dir="$OUT/$1" uri tcp="" tmp
	mkdir -p "$dir"
	tmp="$(mktemp -d /tmp/sipbench-callpath.XXXXXX)"
	CP_TMP[$name]=$tmp
	uri="sip:127.0.0.1:${UAS_PORT[$name]}"
	if [[ $TRANSPORT == tcp ]]; then
		uri="$uri;transport=tcp"
		tcp="127.0.0.1:${SUT_PORT[$name]}"
	fi
	sed -e '/^#/d' -e "s|@UDP_LISTEN@|127.0.0.1:${SUT_PORT[$name]}|g" -e "s|@TCP_LISTEN@|$tcp|g" \
		-e "s|@UAS_URI@|$uri|g" -e "s|@DIR@|$tmp|g" -e "s|@HTTP_LISTEN@|$http|g" "$CP_TEMPLATE" >"$tmp/callpath.yaml"
	cp "$tmp/callpath.yaml" "$dir/callpath.yaml"
	log "$name: port ${SUT_PORT[$name]}, callee port ${UAS_PORT[$name]}: $CALLPATH_CMD -config $tmp/callpath.yaml"
	bash -c "exec $CALLPATH_CMD -config '$tmp/callpath.yaml'" >"$dir/callpath.log" 2>&1 &
	SUT_PID[$name]=$!
	wait_bound udp "${SUT_PORT[$name]}" "${SUT_PID[$name]}" "$name" || { tail -20 "$dir/callpath.log" >&2; exit 1; }
}

start_callpath() { run_callpath callpath 127.0.0.1:0; }

# start_callpath-fork: a callpath whose called number has a FORK registration
# with the SIPp TAS, made through the REST mirror of the SipBreakout API.
start_callpath-fork() {
	local tmp token res
	run_callpath callpath-fork "127.0.0.1:$FORK_HTTP_PORT"
	tmp=${CP_TMP[callpath-fork]}
	wait_bound tcp "$FORK_HTTP_PORT" "${SUT_PID[callpath-fork]}" "callpath-fork HTTP" || exit 1
	token=$(bash -c "exec $CALLPATH_CMD token -config '$tmp/callpath.yaml' -sub bench-tas-provider")
	res=$(curl -sS -X PUT "http://127.0.0.1:$FORK_HTTP_PORT/sipbreakout/v1/registrations" \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		-d "{\"registration\": {\"phone_number\": {\"e164\": \"$CALLED\"}, \"sip_uri\": \"sip:$TAS_IP:$TAS_PORT\", \"route_type\": \"ROUTE_TYPE_FORK\"}}")
	[[ "$res" == *STATUS_CODE_OK* ]] || die "callpath-fork: registration refused: $res"
	log "callpath-fork: $CALLED has a FORK registration to the TAS at $TAS_IP:$TAS_PORT"
}

# ---------------------------------------------------------------- one step

# sipp_common PORT [IP]: options shared by every SIPp of a step.
sipp_common() {
	local ip=${2:-127.0.0.1}
	echo -t "$TFLAG" -i "$ip" -mi "$ip" -ci "$ip" -p "$1" -nostdin -buff_size 4194304 -max_log_size 100000000
}

# run_step SYSTEM RATE ROUND DIR: one measured step; sets STEP_FAIL_PCT.
# (Not run in a subshell: the step's SIPp processes must be this shell's
# children, for the cleanup and for their CPU time via `times`.)
STEP_FAIL_PCT=100
run_step() {
	local sys=$1 rate=$2 round=$3 dir=$4
	local target="127.0.0.1:${SUT_PORT[$sys]}" probe load procs i r calls uas
	local cpu0 cpu1 t0 t1 st0 st1 bt0 bt1 rss
	mkdir -p "$dir"
	STEP_FAIL_PCT=100
	probe=$PROBE_RATE
	if ((probe > rate)); then probe=$rate; fi
	load=$((rate - probe))
	procs=$(((load + UAC_MAX_RATE - 1) / UAC_MAX_RATE))
	if ((procs > 8)); then procs=8; fi

	times >"$dir/.times0"
	cpu0=$(children_cpu "$dir/.times0")
	# shellcheck disable=SC2046
	(cd "$dir" && exec sipp -sf "$SIPP_DIR/uas_load.xml" $(sipp_common "${UAS_PORT[$sys]}") \
		-recv_timeout 20000 -timeout $((STEP + 120))s \
		-trace_stat -stf uas_stat.csv -trace_err -error_file uas_errors.log >uas.out 2>&1) &
	uas=$!
	STEP_PIDS=("$uas")
	wait_bound "$TRANSPORT" "${UAS_PORT[$sys]}" "$uas" "SIPp callee" || return 1
	local tas=""
	if [[ $sys == callpath-fork ]]; then
		# shellcheck disable=SC2046
		(cd "$dir" && exec sipp -sf "$SIPP_DIR/tas_load_fork.xml" $(sipp_common "$TAS_PORT" "$TAS_IP") \
			-recv_timeout 20000 -timeout $((STEP + 120))s \
			-trace_stat -stf tas_stat.csv -trace_err -error_file tas_errors.log >tas.out 2>&1) &
		tas=$!
		STEP_PIDS+=("$tas")
		wait_bound "$TRANSPORT" "$TAS_PORT" "$tas" "SIPp TAS" || return 1
	fi
	local first_uac=${#STEP_PIDS[@]}

	read -r st0 _ < <(tree_stat "${SUT_PID[$sys]}")
	bt0=$(busy_ticks)
	t0=$(now)
	for ((i = 1; i <= procs; i++)); do
		r=$((load / procs + (i <= load % procs ? 1 : 0)))
		calls=$((r * STEP))
		# shellcheck disable=SC2046
		(cd "$dir" && exec sipp "$target" -sf "$SIPP_DIR/uac_load.xml" $(sipp_common $((UAC_PORT0 + i - 1))) \
			-s "$CALLED" -r "$r" -m "$calls" -recv_timeout 10000 -timeout $((STEP + 60))s \
			-trace_stat -stf "uac${i}_stat.csv" -trace_err -error_file "uac${i}_errors.log" >"uac$i.out" 2>&1) &
		STEP_PIDS+=($!)
	done
	if ((probe > 0)); then
		# shellcheck disable=SC2046
		(cd "$dir" && exec sipp "$target" -sf "$SIPP_DIR/uac_load.xml" $(sipp_common "$PROBE_PORT") \
			-s "$CALLED" -r "$probe" -m $((probe * STEP)) -recv_timeout 10000 -timeout $((STEP + 60))s \
			-trace_stat -stf probe_stat.csv -trace_err -error_file probe_errors.log \
			-trace_shortmsg -shortmessage_file probe_short.csv >probe.out 2>&1) &
		STEP_PIDS+=($!)
	fi
	for ((i = first_uac; i < ${#STEP_PIDS[@]}; i++)); do
		wait "${STEP_PIDS[$i]}" || true
	done
	t1=$(now)
	bt1=$(busy_ticks)
	read -r st1 rss _ < <(tree_stat "${SUT_PID[$sys]}")
	stop_sipp "$uas"
	[[ -n "$tas" ]] && stop_sipp "$tas"
	STEP_PIDS=()
	times >"$dir/.times1"
	cpu1=$(children_cpu "$dir/.times1")

	cat >"$dir/step.env" <<-EOF
		system=$sys
		round=$round
		rate=$rate
		load_rate=$load
		probe_rate=$probe
		load_callers=$procs
		step_s=$STEP
		window_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
		hz=$HZ
		sut_pid=${SUT_PID[$sys]}
		sut_ticks=$((st1 - st0))
		sut_pss_kib=$rss
		sipp_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')
		machine_busy_ticks=$((bt1 - bt0))
	EOF

	local created ok failed
	read -r created ok failed < <(stat_sum "$dir"/uac*_stat.csv "$dir/probe_stat.csv")
	# The callers stop by themselves only after placing all their calls; fewer
	# means one was stopped from outside (e.g. another "pkill sipp" on the
	# machine) and the step says nothing.
	if ((created * 100 < rate * STEP * 95)); then
		log "$sys $rate calls/s: only $created of $((rate * STEP)) calls placed: a SIPp caller ended early (stopped from outside?)"
		return 3
	fi
	STEP_FAIL_PCT=$(awk -v c="$created" -v ok="$ok" 'BEGIN { printf "%.4f", (c > 0) ? 100 * (c - ok) / c : 100 }')
	log "$(awk -v sys="$sys" -v rate="$rate" -v c="$created" -v ok="$ok" -v fp="$STEP_FAIL_PCT" -v t0="$t0" -v t1="$t1" \
		-v d=$((st1 - st0)) -v hz="$HZ" 'BEGIN {
			printf "%-9s %6d calls/s: %7d attempted %7d ok %6d failed (%.3f %%), CPU %3.0f %% of a core",
				sys, rate, c, ok, c - ok, fp, 100 * d / hz / (t1 - t0) }')"
}

# measure SYSTEM RATE ROUND: run_step, once more if the step was cut short.
measure() {
	local dir="$OUT/$1/round$3/rate$2" rc=0
	wait_quiet
	run_step "$1" "$2" "$3" "$dir" || rc=$?
	if ((rc == 3)); then
		mv "$dir" "$dir.aborted.$(date +%s)"
		sleep "$SETTLE"
		wait_quiet
		rc=0
		run_step "$1" "$2" "$3" "$dir" || rc=$?
	fi
	if ((rc != 0)); then STEP_FAIL_PCT=100; fi
}

# ---------------------------------------------------------------- main

{
	echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "systems=${SYSTEMS[*]}"
	echo "rates=$RATES"
	echo "step_s=$STEP"
	echo "rounds=$ROUNDS"
	echo "transport=$TRANSPORT"
	echo "probe_rate=$PROBE_RATE"
	echo "kam_children=$KAM_CHILDREN"
	echo "kam_shm_mb=$KAM_SHM"
	echo "callpath_cmd=$CALLPATH_CMD"
	echo "machine=$(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "sipp=$(sipp -v 2>&1 | awk '/SIPp v/ { print $2; exit }')"
	command -v kamailio >/dev/null && echo "kamailio=$(kamailio -v 2>/dev/null | awk 'NR == 1 { print $3 }')"
} >"$OUT/meta.env"
log "results in $OUT"

for s in "${SYSTEMS[@]}"; do "start_$s"; done

if ((WARMUP > 0)); then
	for s in "${SYSTEMS[@]}"; do
		log "$s: warm-up ${WARMUP} s at 200 calls/s (not recorded)"
		saved=$STEP
		STEP=$WARMUP
		run_step "$s" 200 0 "$OUT/warmup/$s" >/dev/null 2>&1 || true
		STEP=$saved
	done
fi

read -r -a rate_list <<<"$RATES"
for ((round = 1; round <= ROUNDS; round++)); do
	declare -A best=() dead=() done_rates=()
	n=0
	for rate in "${rate_list[@]}"; do
		order=("${SYSTEMS[@]}")
		if ((n % 2 == 1)); then # alternate which system goes first
			order=()
			for ((i = ${#SYSTEMS[@]} - 1; i >= 0; i--)); do order+=("${SYSTEMS[$i]}"); done
		fi
		n=$((n + 1))
		for s in "${order[@]}"; do
			[[ -n "${dead[$s]:-}" ]] && continue
			measure "$s" "$rate" "$round"
			fp=$STEP_FAIL_PCT
			done_rates[$s:$rate]=1
			if awk -v f="$fp" -v m="$MAX_FAIL" 'BEGIN { exit !(f < m) }'; then
				if ((rate > ${best[$s]:-0})); then best[$s]=$rate; fi
			fi
			if awk -v f="$fp" -v m="$STOP_FAIL" 'BEGIN { exit !(f >= m) }'; then
				log "$s: ${fp} % failed at $rate calls/s, no higher rates this round"
				dead[$s]=1
			fi
			sleep "$SETTLE"
		done
	done
	if ((HALF)); then
		for s in "${SYSTEMS[@]}"; do
			b=${best[$s]:-0}
			half=$(((b / 2 + 50) / 100 * 100))
			((half >= 100)) || continue
			[[ -n "${done_rates[$s:$half]:-}" ]] && continue
			log "$s: extra step at half the highest sustained rate ($b)"
			measure "$s" "$half" "$round"
			sleep "$SETTLE"
		done
	fi
	unset best dead done_rates
done

cleanup
log "raw results in $OUT"
if command -v go >/dev/null; then
	(cd "$ROOT" && go run ./bench/sipreport -max-fail "$MAX_FAIL" "$OUT")
else
	log "go not found: run 'go run ./bench/sipreport $OUT' for the summary"
fi
