#!/usr/bin/env bash
# Make sure a Docker engine is running and the local test images exist.
#
# Idempotent: starts dockerd only when `docker info` fails, installs Debian packages only when
# they are missing, and builds an image only when it is not already present. There is no
# registry to pull from, so every image the tests and demos use is built here.
set -euo pipefail

BUSYBOX_IMAGE="${BUSYBOX_IMAGE:-local/busybox:1.37}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
BUSYBOX_APPLETS=(
  sh echo cat ls sleep wc grep sed awk true false env printf head tail tr seq date mkdir touch
  rm cp mv test expr find xargs id uname hostname tee dd yes base64 md5sum sha256sum gzip
)

CLEANUP_DIRS=()
cleanup() { [ "${#CLEANUP_DIRS[@]}" -eq 0 ] || rm -rf "${CLEANUP_DIRS[@]}"; }
trap cleanup EXIT

log() { printf 'build_images: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the given Debian packages, only those missing.
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  log "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the engine must outlive this script and the shell that ran it.
  as_root setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  local i
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      log "dockerd is up"
      return 0
    fi
    sleep 0.5
  done
  log "dockerd did not answer within 30 s; see $DOCKERD_LOG"
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  return 1
}

build_busybox_image() {
  if docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  log "building $BUSYBOX_IMAGE"
  local rootfs
  rootfs="$(mktemp -d)"
  CLEANUP_DIRS+=("$rootfs")
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/root" "$rootfs/proc" \
    "$rootfs/sys" "$rootfs/dev" "$rootfs/outputs" "$rootfs/inputs"
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in "${BUSYBOX_APPLETS[@]}"; do
    ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | docker import \
    --change 'CMD ["sh"]' \
    --change 'ENV PATH=/bin' \
    - "$BUSYBOX_IMAGE" >/dev/null
  log "built $BUSYBOX_IMAGE"
}

main() {
  ensure_packages docker.io busybox-static
  ensure_dockerd
  build_busybox_image
}

main "$@"
