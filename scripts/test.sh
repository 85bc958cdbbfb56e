#!/usr/bin/env bash
# The README's test command: installs the test peers when missing, then runs
# every test with the race detector. Extra arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
exec go test -race -count=1 "$@" ./...
