#!/usr/bin/env bash
# Runs deploy/compose.yaml — two gateways, a job worker, PostgreSQL, Redis and nginx with README's block — on this
# machine with podman-compose, and checks it as a whole: migrations ran once and exited 0, /readyz through nginx,
# both gateways answer behind nginx's upstream, forward auth sends a visitor without a session to sign in, the job
# worker is up. No registry is reachable here, so deploy/compose.local.yaml swaps the public images for stand-ins
# built FROM the local Debian base with Debian's packages (deploy/local/Containerfile); tools/test-prereqs.sh
# makes podman, podman-compose and that base ready. Prints the build and start-up times. Exit 0 only if all held.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${BASE_IMAGE:-localhost/debian-base:bookworm}"
PORT="${NGINX_PORT:-18080}"
PROJECT="gwcompose$$"
WORK="$(mktemp -d)"
export CONTAINERS_CONF="$WORK/containers.conf"
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' > "$CONTAINERS_CONF"
ENV_MADE=0
COMPOSE=(podman-compose -p "$PROJECT" -f deploy/compose.yaml -f deploy/compose.local.yaml)
cleanup() {
  NGINX_PORT="$PORT" "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
  podman volume rm -f "${PROJECT}_pgdata" "${PROJECT}_redisdata" >/dev/null 2>&1 || true
  [ "$ENV_MADE" = 1 ] && rm -f deploy/.env
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "compose-local: FAIL: $*" >&2; for s in migrate gateway1 gateway2 worker nginx postgres redis; do
  echo "--- $s" >&2; podman logs --tail 15 "${PROJECT}_${s}_1" >&2 2>&1 || true; done; exit 1; }

command -v podman-compose >/dev/null || fail "podman-compose is not installed: run tools/test-prereqs.sh"
podman image exists "$BASE" || fail "$BASE is missing: run tools/test-prereqs.sh"
pip_cert=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  pip_cert=(--volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.pem:ro --build-arg PIP_CERT=/run/host-ca.pem)
fi
t0=$(date +%s)
podman build -q --network host --format docker --build-arg "BASE=$BASE" "${pip_cert[@]}" -t localhost/gateway:latest \
  -f Containerfile . >/dev/null || fail "gateway image build"
t1=$(date +%s)
for target in postgres redis nginx whoami; do
  podman build -q --network host --build-arg "BASE=$BASE" --target "$target" -t "localhost/gw-local-$target:latest" \
    -f deploy/local/Containerfile . >/dev/null || fail "$target image build"
done
t2=$(date +%s)
echo "compose-local: images built: gateway $((t1 - t0)) s, postgres/redis/nginx/whoami $((t2 - t1)) s"

if [ ! -f deploy/.env ]; then
  key=$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
  printf 'SECRET_KEY=%s\nTOKEN_ENCRYPTION_KEYS=%s\nMETRICS_TOKEN=%s\nPUBLIC_BASE_URL=http://sso.example.com\n' \
    "$(openssl rand -hex 32)" "$key" "$(openssl rand -hex 16)" > deploy/.env
  ENV_MADE=1
fi
# podman-compose 1.0.3 (Debian's) starts services in depends_on order but does not wait on their conditions:
# PostgreSQL is brought up and waited for here, as `condition: service_healthy` would, before the rest.
NGINX_PORT="$PORT" "${COMPOSE[@]}" up -d --no-build postgres redis >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "up"; }
for _ in $(seq 1 60); do
  podman exec "${PROJECT}_postgres_1" pg_isready -q -U gateway 2>/dev/null && break
  sleep 1
done
podman exec "${PROJECT}_postgres_1" pg_isready -q -U gateway || fail "PostgreSQL never became ready"
NGINX_PORT="$PORT" "${COMPOSE[@]}" up -d --no-build >>"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "up"; }
for _ in $(seq 1 120); do  # service_completed_successfully, likewise
  [ "$(podman inspect -f '{{.State.Status}}' "${PROJECT}_migrate_1")" = exited ] && break
  sleep 1
done

ready=""
for _ in $(seq 1 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: sso.example.com' "http://127.0.0.1:$PORT/readyz" || true)
  if [ "$code" = 200 ]; then ready=1; break; fi
  sleep 1
done
t3=$(date +%s)
[ -n "$ready" ] || fail "/readyz through nginx never answered 200 (last: $code)"
echo "compose-local: /readyz 200 through nginx $((t3 - t2)) s after up"

state=$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "${PROJECT}_migrate_1")
[ "$state" = "exited 0" ] || fail "migrate: $state"
for s in gateway1 gateway2 worker postgres redis nginx app; do
  [ "$(podman inspect -f '{{.State.Status}}' "${PROJECT}_${s}_1")" = running ] || fail "$s is not running"
done
for _ in $(seq 1 20); do
  curl -s -o /dev/null -H 'Host: sso.example.com' -H "X-Request-ID: compose-local-check" "http://127.0.0.1:$PORT/healthz"
done
for s in gateway1 gateway2; do  # nginx's round robin reached both: each logged the check's request id
  podman logs "${PROJECT}_${s}_1" 2>&1 | grep -q '"/healthz"' || fail "$s served no request behind nginx"
done
location=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: app.example.com' \
  "http://127.0.0.1:$PORT/reports?x=1")
case "$location" in
  "302 https://sso.example.com/auth/start?rd=http://app.example.com"*) ;;
  *) fail "forward auth without a session answered: $location" ;;
esac
podman logs "${PROJECT}_worker_1" 2>&1 | grep -qi "traceback" && fail "the job worker logged a traceback"
echo "compose-local: OK (migrate exited 0; gateway1, gateway2, worker, postgres, redis, nginx, app running;" \
  "both gateways served behind nginx; forward auth without a session -> 302 to /auth/start)"
