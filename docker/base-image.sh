#!/usr/bin/env bash
# A base image for docker/Dockerfile from Debian packages, for hosts that cannot pull python:3.11-slim:
#   docker/base-image.sh [NAME] [CA_BUNDLE]        (as root; needs debootstrap and a reachable Debian mirror)
# Debian bookworm (minbase) with python3 3.11, python3-venv and ca-certificates, imported as NAME (default
# im2sp-base). CA_BUNDLE (default: the host's /etc/ssl/certs/ca-certificates.crt) is copied into the image and
# named by PIP_CERT, so that pip in the builds and containers trusts what the host trusts (e.g. a proxy's CA).
# DEBIAN_MIRROR overrides the mirror (default http://deb.debian.org/debian).
set -euo pipefail
name=${1:-im2sp-base}
bundle=${2:-/etc/ssl/certs/ca-certificates.crt}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}
command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
[ -r "$bundle" ] || { echo "error: no CA bundle at $bundle" >&2; exit 2; }
rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/im2sp-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
    >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; echo "error: debootstrap failed (log: $rootfs.log)" >&2; exit 1; }
rm -f "$rootfs.log"
# As in Debian's own images: packages installed in a build never start services.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
install -m 644 "$bundle" "$rootfs/etc/ssl/certs/host-ca-bundle.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" --numeric-owner -c . | "$docker" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt' \
    --change 'CMD ["python3"]' \
    - "$name" >/dev/null
echo "$name: Debian bookworm, $("$docker" run --rm "$name" python3 --version)"
