#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
