#!/usr/bin/env bash
# Print the Debian mirror this machine's own apt uses (read from its sources), so what builds a Debian root
# filesystem here (tests/playbooks/hosts/build-rootfs.sh, herd_local/images.py) needs no network beyond apt's.
set -euo pipefail

mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
        /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "debian-mirror.sh: no Debian mirror found in this machine's apt sources" >&2; exit 1; }
echo "$mirror"
