#!/usr/bin/env bash
# The run command: installs missing build dependencies, builds release binaries and starts
# the server (signalling, which spawns the media plane). Arguments go to `wavegate`,
# e.g. scripts/run.sh --config wavegate.toml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cargo build --release --locked --bin wavegate --bin wavegate-mediaplane
# Honour CARGO_TARGET_DIR: cargo built there, so the binary is there too.
exec "${CARGO_TARGET_DIR:-target}/release/wavegate" "$@"
