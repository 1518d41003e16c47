#!/usr/bin/env bash
# The whole test suite: Rust unit, property and integration tests, then the black-box tests that
# start the real binary and talk to it with the OpenTelemetry Python SDK. Needs the Python
# packages in tests/blackbox/requirements.txt (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --locked --bin andante
cargo test --workspace --locked
ANDANTE_BIN="$PWD/target/debug/andante" python3 -m pytest tests/blackbox -q
