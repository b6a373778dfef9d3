#!/usr/bin/env bash
# Compile the WASI test programs in scripts/wasm/*.c into .build/wasm/*.wasm.
#
# Idempotent: a module is rebuilt only when its source is newer. Installs the toolchain from
# Debian only when it is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DIR="$ROOT/scripts/wasm"
OUT_DIR="${WASM_OUT_DIR:-$ROOT/.build/wasm}"
PACKAGES=(clang lld wasi-libc libclang-rt-14-dev-wasm32)

log() { printf 'build_wasm: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_toolchain() {
  local missing=()
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

main() {
  mkdir -p "$OUT_DIR"
  local src name out tmp
  local toolchain_checked=0
  for src in "$SRC_DIR"/*.c; do
    name="$(basename "$src" .c)"
    out="$OUT_DIR/$name.wasm"
    if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
      continue
    fi
    if [ "$toolchain_checked" -eq 0 ]; then
      ensure_toolchain
      toolchain_checked=1
    fi
    # Compile to a temporary name and rename: parallel runs never see a half-written module.
    tmp="$(mktemp "$OUT_DIR/.$name.XXXXXX")"
    if ! clang --target=wasm32-wasi -O2 -s "$src" -o "$tmp"; then
      rm -f "$tmp"
      return 1
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$out"
    log "built $out"
  done
}

main "$@"
