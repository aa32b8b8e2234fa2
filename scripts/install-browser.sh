#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (never a browser download) and cairo for SVG outputs. Needs root (CI runs as root);
# elsewhere it says what to do and the browser tests skip with that reason.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "install-browser: /usr/bin/chromium missing and not root; browser tests will skip (sudo apt-get install chromium)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-browser: no apt-get here; browser tests will skip" >&2
  exit 0
fi
echo "install-browser: apt-get install chromium fonts-liberation libcairo2" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium fonts-liberation libcairo2 >/dev/null
