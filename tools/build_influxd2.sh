#!/usr/bin/env bash
# Build InfluxDB 2 (influxd, a real Flux engine) for the tests and benchmarks, once.
#
# No InfluxDB 2 server comes as a package on our machines, so we build it from its Go module
# the way InfluxData's own Makefile does: the Flux library has a Rust part (libflux) that cgo
# links statically; InfluxData's pkg-config wrapper answers `pkg-config --cflags flux` by
# running `cargo build --release` on the flux module's libflux sources (it copies them out of
# the read-only Go module cache into GOCACHE first). Without the `assets` build tag influxd is
# built with no UI, which is all the tests need (HTTP API only).
#
# The binary is cached outside the repository, keyed by version:
#   ${MESHALERT_CACHE:-~/.cache/meshalert}/influxd-<version>/influxd
# A second run finds it there and returns at once. Prints the binary's path on stdout.
# Cold build on a 2-core machine: see README (Development).
set -euo pipefail

VERSION="${INFLUXD2_VERSION:-2.7.12}"
PKG_CONFIG_WRAPPER_VERSION="${PKG_CONFIG_WRAPPER_VERSION:-v0.2.7}"
CACHE="${MESHALERT_CACHE:-$HOME/.cache/meshalert}"
DEST_DIR="$CACHE/influxd-$VERSION"
DEST="$DEST_DIR/influxd"
MODULE="github.com/influxdata/influxdb/v2"

log() { printf 'build_influxd2: %s\n' "$*" >&2; }

cached() { [ -x "$DEST" ] && "$DEST" version >/dev/null 2>&1; }

if cached; then
	echo "$DEST"
	exit 0
fi

for tool in go cargo cc; do
	command -v "$tool" >/dev/null 2>&1 || {
		log "needs '$tool' on PATH (Go toolchain, Rust's cargo and a C compiler build influxd)"
		exit 1
	}
done

mkdir -p "$DEST_DIR"
# Two worktrees or a parallel make may ask at once: one builds, the other waits and reuses.
exec 9>"$DEST_DIR/.lock"
flock 9
if cached; then
	echo "$DEST"
	exit 0
fi

# The go.mod of influxd names an older toolchain; ours is newer and builds it as is, so
# never let the go command go and fetch another one.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=1
start=$(date +%s)

# The wrapper lives in our cache, not on the user's PATH; it must come first on PATH for cgo.
TOOLS_BIN="$CACHE/go-tools/pkg-config-$PKG_CONFIG_WRAPPER_VERSION"
if [ ! -x "$TOOLS_BIN/pkg-config" ]; then
	log "installing InfluxData's pkg-config wrapper $PKG_CONFIG_WRAPPER_VERSION"
	GOBIN="$TOOLS_BIN" go install "github.com/influxdata/pkg-config@$PKG_CONFIG_WRAPPER_VERSION"
fi
export PATH="$TOOLS_BIN:$PATH"

# influxd's go.mod has a replace directive, so `go install module@version` refuses it; build
# inside the downloaded module instead (its go.sum pins every dependency).
log "downloading $MODULE@v$VERSION"
SRC=$(go mod download -json "$MODULE@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$SRC" ] || { log "go mod download gave no module directory"; exit 1; }
cd "$SRC"

# flux pins Rust 1.72 in rust-toolchain.toml, which rustup would try to download (only
# crates.io is reachable): build with the toolchain this machine already has instead.
if command -v rustup >/dev/null 2>&1 && [ -z "${RUSTUP_TOOLCHAIN:-}" ]; then
	RUSTUP_TOOLCHAIN=$(cd / && rustup show active-toolchain | cut -d' ' -f1)
	export RUSTUP_TOOLCHAIN
fi

# libflux turns on `deny(warnings)` (its default `strict` feature); lints added to Rust since
# 1.72 (e.g. mismatched_lifetime_syntaxes) fail a build whose code is fine. Cap lints at
# warn for libflux's own two crates (cargo already caps registry crates), including
# flux-core as the build dependency of flux's build.rs, which RUSTFLAGS would not reach
# under --target.
WRAPPER="$CACHE/go-tools/rustc-cap-lints-warn"
mkdir -p "$(dirname "$WRAPPER")"
printf '#!/bin/sh\nexec "$@" --cap-lints=warn\n' >"$WRAPPER.tmp"
chmod +x "$WRAPPER.tmp"
mv "$WRAPPER.tmp" "$WRAPPER"
export RUSTC_WORKSPACE_WRAPPER="$WRAPPER"

# Ask the wrapper from inside the flux module, as cgo itself will (it runs pkg-config in the
# package's directory): asked from influxd's root, the wrapper's old go.mod parser stops at
# influxd's `toolchain` line.
FLUX_DIR=$(go list -m -f '{{.Dir}}' github.com/influxdata/flux)
[ -n "$FLUX_DIR" ] || FLUX_DIR=$(go mod download -json github.com/influxdata/flux |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
log "building libflux (Rust, cargo, ${RUSTUP_TOOLCHAIN:-default toolchain}) from $FLUX_DIR through the pkg-config wrapper"
if ! (cd "$FLUX_DIR/libflux/go/libflux" && pkg-config --cflags flux >/dev/null); then
	log "libflux build failed (rerun with PKG_CONFIG_LOG=/tmp/pkg-config.log for details)"
	exit 1
fi

log "building influxd $VERSION (Go, cgo); this takes a while"
go build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=module-v$VERSION" \
	-o "$DEST.tmp" ./cmd/influxd
mv "$DEST.tmp" "$DEST"
log "built $DEST in $(($(date +%s) - start)) s"
echo "$DEST"
