#!/usr/bin/env bash
# Make sure what the test suite needs is here: Debian's Chromium, nginx, Prometheus and podman (with a local Debian
# base image), PostgreSQL and Redis on 127.0.0.1, and the npm packages the tests drive (oidc-provider, axe-core).
# Idempotent; called by `make test` and by .ci/run. Installs or starts only what is missing.
set -euo pipefail

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "test-prereqs: installing chromium"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "test-prereqs: installing nginx-light (forward-auth test of the README's nginx configuration)"
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
  fi
fi

if ! command -v prometheus >/dev/null 2>&1; then
  echo "test-prereqs: installing prometheus (tests/ops/test_prometheus.py scrapes the gateway with it)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
fi

# The container image test (tests/ops/test_container.py): podman with runc, and a local Debian base image made
# with debootstrap (no container registry is reachable here; see shared/reference/testing-recipes.md).
# tools/compose-local.sh (deploy/compose.yaml as a whole): podman-compose, and the CNI dnsname plugin so the
# services find each other by name.
PODMAN_PKGS="podman runc debootstrap podman-compose golang-github-containernetworking-plugin-dnsname"
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 \
   || ! command -v podman-compose >/dev/null 2>&1 || [ ! -x /usr/lib/cni/dnsname ]; then
  echo "test-prereqs: installing podman, runc, debootstrap, podman-compose and the dnsname plugin"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PODMAN_PKGS >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PODMAN_PKGS >/dev/null
  fi
fi
PODMAN_CONF="$(mktemp)"
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n' > "$PODMAN_CONF"
if ! CONTAINERS_CONF="$PODMAN_CONF" podman --runtime runc image exists localhost/debian-base:bookworm; then
  echo "test-prereqs: making the local Debian base image (debootstrap, about a minute)"
  ROOTFS="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$ROOTFS" >/dev/null
  tar -C "$ROOTFS" -c . | CONTAINERS_CONF="$PODMAN_CONF" podman --runtime runc import - localhost/debian-base:bookworm >/dev/null
  rm -rf "$ROOTFS"
fi
rm -f "$PODMAN_CONF"

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "test-prereqs: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "test-prereqs: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test-prereqs: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "test-prereqs: Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }

# panva's oidc-provider (an independent OpenID Provider for the generic-provider SSO tests), from its lock file.
OIDC_DIR="$(dirname "$0")/../tests/oidc_provider"
if [ ! -d "$OIDC_DIR/node_modules/oidc-provider" ]; then
  echo "test-prereqs: installing oidc-provider (npm)"
  (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --silent)
fi
# axe-core (the WCAG 2.1 A/AA checks of tests/app/test_accessibility.py), from its lock file.
A11Y_DIR="$(dirname "$0")/../tests/a11y"
if [ ! -f "$A11Y_DIR/node_modules/axe-core/axe.min.js" ]; then
  echo "test-prereqs: installing axe-core (npm)"
  (cd "$A11Y_DIR" && npm ci --no-audit --no-fund --silent)
fi
echo "test-prereqs: chromium, nginx, prometheus, podman, PostgreSQL, Redis, oidc-provider and axe-core are ready"
