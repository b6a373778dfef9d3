#!/usr/bin/env bash
# Regenerate bacalhau/_proto/ from proto/ (Python messages, gRPC stubs and mypy stubs).
#
#   scripts/codegen.sh           rewrite bacalhau/_proto/ in place
#   scripts/codegen.sh --check   regenerate into a temporary directory and fail, printing the
#                                diff, if the checked-in code differs (for CI)
#
# protoc emits imports rooted at the proto package (`from bacalhau.v1 import types_pb2`); the
# code lives under `bacalhau._proto`, so those imports are rewritten here. The rewrite touches
# only import lines and module-name string literals, never the serialized descriptors, and is
# deterministic, so the output depends on nothing but proto/ and the tool versions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_DIR="$ROOT/proto"
OUT_DIR="$ROOT/bacalhau/_proto"
PYTHON="${PYTHON:-python3}"

mode="write"
case "${1:-}" in
  "") ;;
  --check) mode="check" ;;
  -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
  *) echo "codegen: unknown argument: $1 (use --check or nothing)" >&2; exit 2 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

wkt_include="$("$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"

# Sorted so the protoc invocation (and anything order-dependent) is stable.
mapfile -t protos < <(cd "$PROTO_DIR" && find bacalhau -name '*.proto' | LC_ALL=C sort)
if [ "${#protos[@]}" -eq 0 ]; then
  echo "codegen: no .proto files under $PROTO_DIR" >&2
  exit 1
fi

mkdir -p "$work/raw"
# mypy-protobuf reports each file it writes on stderr; keep only real diagnostics.
if ! (cd "$PROTO_DIR" && "$PYTHON" -m grpc_tools.protoc \
  -I . -I "$wkt_include" \
  --python_out="$work/raw" \
  --grpc_python_out="$work/raw" \
  --mypy_out="$work/raw" \
  --mypy_grpc_out="$work/raw" \
  "${protos[@]}") >"$work/protoc.log" 2>&1; then
  cat "$work/protoc.log" >&2
  exit 1
fi
grep -v '^Writing mypy to ' "$work/protoc.log" >&2 || true

# Flatten bacalhau/v1/ -> v1/ (the package prefix is already `bacalhau._proto`).
gen="$work/_proto"
mkdir -p "$gen"
cp -R "$work/raw/bacalhau/." "$gen/"

while IFS= read -r -d '' f; do
  sed -i \
    -e 's/^from bacalhau\.\(v[0-9][0-9]*\) import /from bacalhau._proto.\1 import /' \
    -e 's/^import bacalhau\.\(v[0-9][0-9]*\)\./import bacalhau._proto.\1./' \
    -e "s/'bacalhau\.\(v[0-9][0-9]*\.[A-Za-z0-9_]*_pb2\)'/'bacalhau._proto.\1'/g" \
    "$f"
done < <(find "$gen" -type f \( -name '*.py' -o -name '*.pyi' \) -print0)

# Every generated directory is a package.
init_doc='"""Generated from proto/ by scripts/codegen.sh. Do not edit."""'
printf '%s\n' "$init_doc" > "$gen/__init__.py"
while IFS= read -r -d '' d; do
  printf '%s\n' "$init_doc" > "$d/__init__.py"
done < <(find "$gen" -mindepth 1 -type d -print0)

if [ "$mode" = "check" ]; then
  if diff -ru --exclude='__pycache__' "$OUT_DIR" "$gen"; then
    echo "codegen: bacalhau/_proto is up to date"
  else
    echo "codegen: bacalhau/_proto is stale; run scripts/codegen.sh" >&2
    exit 1
  fi
  if command -v buf >/dev/null 2>&1; then
    (cd "$ROOT" && buf lint)
    echo "codegen: buf lint passed"
  else
    echo "codegen: buf not installed (npm install -g @bufbuild/buf); lint not run" >&2
  fi
else
  rm -rf "$OUT_DIR"
  cp -R "$gen" "$OUT_DIR"
  echo "codegen: wrote $(find "$OUT_DIR" -type f | wc -l) files to bacalhau/_proto"
fi
