#!/usr/bin/env bash
# Builds cometctl and comet-server in release mode and installs both into PREFIX/bin, side by side (`cometctl
# images build` finds the comet-server binary beside itself).
# Idempotent: running it again rebuilds only what changed and replaces the installed binaries.
#
#   ./install.sh [--prefix DIR]      default prefix: ~/.local
set -euo pipefail

prefix="${HOME}/.local"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo not found; install Rust (rustup) first, then run this again" >&2
  exit 1
fi

here="$(cd "$(dirname "$0")" && pwd)"
binaries=(cometctl comet-server)

bin_args=()
for binary in "${binaries[@]}"; do bin_args+=(--bin "${binary}"); done
echo "building ${binaries[*]} (release)..." >&2
cargo build --release --locked --manifest-path "${here}/Cargo.toml" "${bin_args[@]}"

target_dir="${CARGO_TARGET_DIR:-${here}/target}"
install -d "${prefix}/bin"
for binary in "${binaries[@]}"; do
  install -m 0755 "${target_dir}/release/${binary}" "${prefix}/bin/${binary}"
  echo "installed ${prefix}/bin/${binary}" >&2
done

case ":${PATH}:" in
  *":${prefix}/bin:"*) ;;
  *) echo "note: ${prefix}/bin is not on PATH; add it to use the commands by name" >&2 ;;
esac
