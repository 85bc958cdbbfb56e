#!/usr/bin/env bash
# Installs what the tests need from Debian's packages when it is missing: the
# real SIP peers the tests start (SIPp, Kamailio, baresip), a browser
# (Chromium), a DNS server (dnsmasq), a
# C compiler for the race detector, libopus for the media plane's Opus build
# (go test -tags opus ./webrtc/..., make bench-media), and grpcurl (go
# install). Needs root or sudo for apt-get.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# libopus (cgo, build tag opus) through pkg-config; hraban/opus also links
# libopusfile unless built with -tags nolibopusfile.
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
pkg-config --exists opusfile 2>/dev/null || need+=(libopusfile-dev)
# dnsmasq: the DNS server sipstack's SRV/A resolution tests query. Debian puts
# it in /usr/sbin, which a non-root PATH may lack.
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
# Chromium: the real browser of the demo page's test (chromedp drives it
# headless), and baresip: a real SIP phone for it to call.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v baresip >/dev/null 2>&1 || need+=(baresip)
# Node.js runs the relay's JavaScript client in its test.
command -v node >/dev/null 2>&1 || need+=(nodejs)
# grpcurl: an independent gRPC client for the provisioning API's interop
# test, installed with go install (Debian has no package).
if ! command -v grpcurl >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/grpcurl" ]; then
	echo "installing grpcurl (go install)" >&2
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3
fi
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${need[*]} (apt-get)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
