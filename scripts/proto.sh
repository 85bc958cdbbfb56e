#!/usr/bin/env bash
# Regenerates the Go code of the protos under api/ into api/gen/ (committed,
# so building callpath needs none of this). Installs what it needs:
# protoc and the well-known types from Debian, the Go plugins with go install
# at the versions pinned below (protoc-gen-go matches google.golang.org/protobuf
# in go.mod).
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.0
if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/duration.proto ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing protobuf-compiler libprotobuf-dev (apt-get)" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
fi
bin="$(go env GOPATH)/bin"
[ -x "$bin/protoc-gen-go" ] || go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
[ -x "$bin/protoc-gen-go-grpc" ] || go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
rm -rf api/gen
PATH="$bin:$PATH" protoc -I api -I /usr/include \
	--go_out=. --go_opt=module=callpath \
	--go-grpc_out=. --go-grpc_opt=module=callpath \
	$(cd api && find wgtwo -name '*.proto' | sort)
echo "generated: $(find api/gen -name '*.go' | sort | tr '\n' ' ')"
