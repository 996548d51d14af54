#!/usr/bin/env bash
# Test-only system packages for the telemetry/status tests, installed when missing (called by .ci/run):
#   prometheus      — a real Prometheus scrapes /metrics and evaluates every dashboard query (test/telemetry)
#   chromium        — headless browser for the status page test (test/status), driven by playwright-core
#   docker-compose  — `docker-compose config` validates infra/docker-compose.yml without a Docker engine
#   numactl         — test/cli/numa-bind.test.ts runs a supervised process under numactl, as `up` runs a GPU's worker
#   openssl         — test/ops/redis-secure.test.ts makes a CA and a server certificate for Redis over TLS
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v openssl >/dev/null || need+=(openssl)
command -v numactl >/dev/null || need+=(numactl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
