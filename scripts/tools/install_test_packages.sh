#!/usr/bin/env bash
# The Debian packages the tests use, installed with apt-get when one is missing (sudo
# when not root). With all of them present it only looks (well under a second), so the
# README's install block runs it every time.
set -euo pipefail

# command on PATH, the package that brings it, what the tests use it for
NEEDED=(
    "exiftool libimage-exiftool-perl XMP read back by an independent reader"
    "chromium chromium the review site and rbv serve, driven by Playwright"
    "curl curl requests as another local user (rbv serve's access tests)"
    "redis-server redis-server the real Immich server"
    "ffmpeg ffmpeg the real Immich server"
    "node nodejs building and running the real Immich server"
    "npm npm building the real Immich server"
)

missing=()
for entry in "${NEEDED[@]}"; do
    read -r command package _ <<<"$entry"
    command -v "$command" >/dev/null || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "error: the tests need ${missing[*]} (Debian's names) and there is no apt-get" \
         "here: install them with this system's package manager" >&2
    exit 1
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# Another apt-get (an engineer's, unattended-upgrades) holding dpkg's lock is waited
# for, up to 10 minutes, instead of failing at once.
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600)
echo "installing the tests' Debian packages: ${missing[*]}"
"${apt[@]}" install -y "${missing[@]}" || { "${apt[@]}" update && "${apt[@]}" install -y "${missing[@]}"; }
