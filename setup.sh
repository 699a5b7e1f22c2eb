#!/bin/sh
# Set up eksnet on a fresh Debian machine with Python 3.11, as root: the lab's Debian packages
# (iproute2, iptables, conntrack, tcpdump, net-tools for `arp`, nfacct for kube-proxy's
# counters), Chromium and the DejaVu fonts for the browser tests of the pictures, then a
# virtualenv in .venv with eksnet and its test tools. Safe to run again: it installs only what
# is missing.
set -eu
cd "$(dirname "$0")"

missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need ip iproute2
need iptables iptables
need iptables-legacy iptables
need xtables-monitor iptables
need conntrack conntrack
need tcpdump tcpdump
need arp net-tools
need nft nftables
need nfacct nfacct
need chromium chromium
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || missing="$missing fonts-dejavu-core"
if [ -n "$missing" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: missing$missing and no apt-get to install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
        rm -rf .venv
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
