#!/usr/bin/env bash
# Installs the Debian packages Nuage's tests and demo need (run as root on Debian 12).
set -euo pipefail
# chromium: the web app's browser tests (Playwright drives it; no browser is downloaded).
packages=(sip-tester baresip-core sox espeak-ng chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js 18 or later and npm build the web app (web/); Debian 12's will do, and a newer
# one already installed (from NodeSource, say) is kept.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run 'make install' as root)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "Node.js $(node --version) is too old to build the web app: 18 or later is needed" >&2
    exit 1
fi
