#!/usr/bin/env bash
# Installs what the build, the tests and the demo need beyond a new machine's toolchains
# (Rust, Java 17, Python 3): Debian's Gradle, Maven and Chromium, and the Python test libraries. Flink
# distributions are installed on first use by tests/harness/flink.py (from PyPI); the Kafka
# broker and Flink's Kafka connector by tests/harness/kafka.py (from Maven Central, with Maven).
# Idempotent and quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "bootstrap: '$1' is required but not installed" >&2; exit 1; }; }
need cargo
need javac
need python3

# The lint gate of scripts/test.sh needs rustfmt and clippy.
if command -v rustup >/dev/null 2>&1 && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  echo "bootstrap: adding rustfmt and clippy to the Rust toolchain"
  rustup component add rustfmt clippy >/dev/null
fi

missing=()
command -v gradle >/dev/null 2>&1 || missing+=(gradle)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# The report's test opens the page in a real browser.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} from Debian's packages"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The versions matter, not only the names: a pytest outside the pinned range silently turns off
# the grouping the end-to-end tests run in. pip leaves what already satisfies the pins alone.
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
