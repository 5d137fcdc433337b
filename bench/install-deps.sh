#!/usr/bin/env bash
# What bench/run.sh and bench/soak.sh need on Debian 12 (run as root): the
# lab's packages (lab/install-deps.sh), the load generators (wrk, dnsperf),
# the timers and profilers (hyperfine, GNU time, perf) and openssl for the
# lab's HTTPS certificate (the tls profile).
set -euo pipefail
bash "$(dirname "$0")/../lab/install-deps.sh"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends hyperfine wrk dnsperf time linux-perf openssl
