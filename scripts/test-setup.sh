#!/usr/bin/env bash
# System dependencies of the test suite (called by scripts/test.sh; safe to run again).
# - chromium: the HTML report is checked in headless Chromium (tests/test_report.py);
# - java (a JRE, 17 for Spark 3.5): the Spark tests run a local Spark (tests/test_spark.py).
# Installs only what is missing; needs root (or passwordless sudo) for apt-get; never prompts.
set -euo pipefail

have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have_java() { command -v java >/dev/null 2>&1; }

missing=()
if have_chromium; then
    echo "test-setup: chromium present ($(command -v chromium || command -v chromium-browser))"
else
    missing+=(chromium)
fi
if have_java; then
    echo "test-setup: java present ($(command -v java))"
else
    missing+=(default-jre-headless)
fi
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-setup: ${missing[*]} missing and no apt-get here; install them by hand (those tests will be" \
         "skipped outside CI and fail under CI=true)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "test-setup: ${missing[*]} missing and not root; run 'apt-get install -y ${missing[*]}' as root" >&2
        exit 0
    fi
fi
echo "test-setup: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${missing[@]}"
have_chromium && echo "test-setup: chromium installed"
have_java && echo "test-setup: java installed"
exit 0
