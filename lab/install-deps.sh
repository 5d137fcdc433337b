#!/usr/bin/env bash
# Install what lab/lab.sh and lab/check-captures.py need on Debian 12 (run as root).
# The lab only uses the binaries: services the packages ship (nginx, dnsmasq)
# are kept from starting on the host while installing.
set -euo pipefail

PACKAGES=(
    iproute2        # ip netns, veth, routes, neighbours, ss
    nftables        # kube-proxy-style DNAT and the drop rule, in pp-node
    dnsmasq-base    # cluster DNS (the binary only, no host service)
    nginx-light     # HTTP servers in the pods and the external host
    curl            # the walkthrough client
    tcpdump         # recording
    tshark          # capinfos and the cross-check in check-captures.py
    dnsutils        # dig, for poking at the lab DNS by hand
    procps          # sysctl
    python3         # expected.py, check-captures.py
    openssl         # LAB_TLS=1: the self-signed certificate of the HTTPS servers
)

export DEBIAN_FRONTEND=noninteractive
# Debian's hook for "may this package start its service now?": 101 = no.
created_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
cleanup() { if [[ $created_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

apt-get update -qq
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
