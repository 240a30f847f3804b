#!/usr/bin/env bash
# The project's version: the Cargo workspace's, used by the jar name and the native library.
sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$(dirname "$0")/../Cargo.toml" | head -1
