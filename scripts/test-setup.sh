#!/usr/bin/env bash
# System dependencies of the test suite (called by scripts/test.sh; safe to run again).
# - chromium: the HTML report is checked in headless Chromium (tests/test_report.py).
# Installs only what is missing; needs root (or passwordless sudo) for apt-get; never prompts.
set -euo pipefail

have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }

if have_chromium; then
    echo "test-setup: chromium present ($(command -v chromium || command -v chromium-browser))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-setup: chromium missing and no apt-get here; install Chromium by hand (report tests will be skipped" \
         "outside CI and fail under CI=true)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "test-setup: chromium missing and not root; run 'apt-get install -y chromium' as root" >&2
        exit 0
    fi
fi
echo "test-setup: installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
have_chromium && echo "test-setup: chromium installed"
