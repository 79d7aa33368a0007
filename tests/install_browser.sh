#!/usr/bin/env bash
# Debian's Chromium for the UI's browser test (tests/test_ui_browser.py); Playwright drives it.
# Nothing to do where a chromium is already on PATH.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install_browser.sh: no chromium on PATH; install your OS's chromium package (as root: apt-get install chromium)" >&2
    exit 2
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
