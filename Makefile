# callpath — common tasks. `make test` is the command the README and CI run.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 100000x  # a count: see .ci/run for why not a duration
STATICCHECK_VERSION ?= v0.8.2

.PHONY: run build test test-opus deps lint fuzz bench bench-sip bench-hold bench-register bench-api bench-media bench-relay proto clean

run:                 ## run the gateway on its embedded defaults
	$(GO) run ./cmd/callpath

build:
	$(GO) build -o bin/callpath ./cmd/callpath

deps:                ## SIPp and Kamailio for the interop tests (apt-get)
	./scripts/deps.sh

test:                ## every test, with the race detector, against real peers
	./scripts/test.sh

test-opus:           ## the media plane's tests in the build that transcodes Opus (cgo, libopus-dev)
	./scripts/deps.sh
	$(GO) test -race -count=1 -tags opus ./webrtc/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fuzz:                ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

proto:               ## regenerate api/gen from api/*.proto (installs protoc and plugins)
	./scripts/proto.sh

bench:               ## Go micro-benchmarks of the hot paths
	$(GO) test -run XXX -bench . -benchmem -count 3 $(PKGS)

bench-sip: deps      ## SIPp load through Kamailio, callpath and callpath with FORK (see BENCHMARKS.md)
	$(GO) build -o bin/callpath-bench ./cmd/callpath
	./bench/sip.sh kamailio callpath callpath-fork --callpath-cmd bin/callpath-bench $(BENCH_SIP_ARGS)

bench-register: deps ## 10,000 upstream registrations kept alive against Kamailio (see BENCHMARKS.md)
	$(GO) build -o bin/callpath-bench ./cmd/callpath
	./bench/register.sh --callpath-cmd bin/callpath-bench $(BENCH_REGISTER_ARGS)

bench-api:           ## CAMARA API durable creates vs a bare net/http + SQLite handler (see BENCHMARKS.md)
	$(GO) build -o bin/callpath-bench ./cmd/callpath
	./bench/api.sh --callpath-cmd bin/callpath-bench $(BENCH_API_ARGS)

bench-media:         ## relayed and transcoded calls per core vs a plain Go UDP relay and libopus alone (see BENCHMARKS.md)
	./scripts/deps.sh
	$(GO) build -tags opus -o bin/mediagw ./bench/mediagw
	$(GO) build -tags opus -o bin/mediaload ./bench/mediaload
	./bin/mediaload -gw bin/mediagw $(BENCH_MEDIA_ARGS)

bench-relay:         ## WebSocket relay: 10,000 connections held, 2,000 events/s, vs a bare gorilla/websocket server (see BENCHMARKS.md)
	$(GO) build -o bin/callpath-bench ./cmd/callpath
	./bench/relay.sh --callpath-cmd bin/callpath-bench $(BENCH_RELAY_ARGS)

bench-hold:          ## memory per established call, 10,000 calls held
	./bench/hold.sh $(BENCH_HOLD_ARGS)

clean:
	rm -rf bin var
