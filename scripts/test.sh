#!/usr/bin/env bash
# The whole test suite (as root): lint gates, unit tests, crate integration tests against
# real kernels and registries, end-to-end tests, BuildKit conformance.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
