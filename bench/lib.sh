# bench/lib.sh - what the bench scripts share. Source it (after set -euo
# pipefail) from a script under bench/:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The script that sourced this file, for messages and --help.
BENCH_SCRIPT="${BASH_SOURCE[1]}"

die() { echo "$(basename "$BENCH_SCRIPT"): $*" >&2; exit 2; }
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# usage prints the script's header comment: its --help.
usage() { sed -n '2,/^$/p' "$BENCH_SCRIPT" | sed 's/^# \{0,1\}//'; }

# bench_out DIR PREFIX prints the results directory, made: DIR, or a new
# /tmp/PREFIX.XXXXXX when DIR is empty.
bench_out() {
	local dir="$1"
	[[ -n "$dir" ]] || dir="$(mktemp -d "/tmp/$2.XXXXXX")"
	mkdir -p "$dir"
	echo "$dir"
}

# parse_args NAME=VAR ... -- "$@" sets shell variable VAR from each
# "--NAME VALUE" of the arguments; -h/--help prints usage, anything else
# stops the script. The variables keep their defaults when not given.
parse_args() {
	local -A vars=()
	while [[ $# -gt 0 && "$1" != -- ]]; do
		vars["--${1%%=*}"]="${1#*=}"
		shift
	done
	[[ $# -gt 0 ]] && shift
	while [[ $# -gt 0 ]]; do
		case "$1" in
		-h | --help) usage; exit 0 ;;
		esac
		local var="${vars[$1]:-}"
		[[ -n "$var" ]] || die "unknown argument: $1"
		[[ $# -ge 2 ]] || die "$1 needs a value"
		printf -v "$var" '%s' "$2"
		shift 2
	done
}
