#!/usr/bin/env bash
# rust-builder-image.sh — a local stand-in for the official `rust` image, for
# machines that cannot pull from a container registry (CI here), so that the
# from-source way of deploy/Dockerfile can be built and tested.
#
# How: debootstrap a minimal Debian bookworm with gcc and libc6-dev (from the
# Debian mirror), copy this machine's Rust toolchain (cargo, rustc, the std
# library of the host target) into /usr/local and its CA bundle (crates.io may
# be reached through a TLS proxy), and `docker import` the result.
# Elsewhere, use the official image: --builder-image rust:1.95-slim-bookworm.
#
# Env: RUST_BUILDER_IMAGE (tag, default session-backend-ci/rust:<rustc version>),
#      DEBIAN_MIRROR (default http://deb.debian.org/debian), FORCE=1 to rebuild.
set -Eeuo pipefail

log() { echo "[rust-builder-image] $*"; }
die() { echo "[rust-builder-image] ERROR: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker engine not reachable"
command -v rustc >/dev/null || die "rustc not found"

VERSION="$(rustc --version | awk '{print $2}')"
IMAGE="${RUST_BUILDER_IMAGE:-session-backend-ci/rust:$VERSION}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SYSROOT="$(rustc --print sysroot)"
TARGET="$(rustc -vV | awk '/^host:/ {print $2}')"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "image $IMAGE is present - nothing to do"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"
log "debootstrap bookworm (minbase + gcc, libc6-dev, ca-certificates) from $MIRROR"
debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

log "copying Rust $VERSION ($TARGET) from $SYSROOT"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/usr/local/lib/rustlib/$TARGET"
cp -a "$SYSROOT/bin/cargo" "$SYSROOT/bin/rustc" "$ROOT/usr/local/bin/"
cp -a "$SYSROOT"/lib/*.so* "$ROOT/usr/local/lib/"
cp -a "$SYSROOT/lib/rustlib/$TARGET/lib" "$SYSROOT/lib/rustlib/$TARGET/bin" "$ROOT/usr/local/lib/rustlib/$TARGET/"
mkdir -p "$ROOT/usr/local/cargo"
# Trust what this machine trusts (it may reach registries through a TLS proxy).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
fi

log "importing $IMAGE"
tar -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV CARGO_HOME=/usr/local/cargo' \
  -c 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
docker run --rm "$IMAGE" sh -c 'cargo --version && rustc --version && cc --version | head -1'
log "built $IMAGE"
