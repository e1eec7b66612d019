#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer on loopback and wrk
# and Debian's chromium (the browser tests drive it through Playwright) are installed:
# uses running ones, starts installed ones, installs them from Debian packages when missing.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

die() { echo "services: $*" >&2; exit 1; }

wait_for() {  # wait_for SECONDS description command...
  local deadline=$((SECONDS + $1)); local what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up within the deadline"
    sleep 0.5
  done
}

apt_install() {
  [[ $(id -u) -eq 0 ]] || die "need root to install $* (or start it yourself and rerun)"
  echo "services: installing $* from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_up; then return; fi
  if ! command -v pg_ctlcluster >/dev/null || [[ -z $(ls /etc/postgresql 2>/dev/null) ]]; then
    apt_install postgresql
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  [[ -n $version ]] || die "no PostgreSQL cluster found under /etc/postgresql"
  local hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q "gateway-tests" "$hba"; then
    # Tests connect as postgres over loopback without a password, like the dev machines.
    sed -i "1i host all all 127.0.0.1/32 trust # gateway-tests\nhost all all ::1/128 trust # gateway-tests" "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
  wait_for 60 "PostgreSQL on 127.0.0.1:$PG_PORT" pg_up
}

redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }

ensure_redis() {
  # The Cluster and Sentinel tests start their own servers from these binaries (a sentinel is
  # `redis-server --sentinel`), even when the shared Redis is already up.
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
    || die "redis-server and redis-cli are still missing after apt-get install redis-server"
  redis-server --version | grep -qE 'v=(6\.[2-9]|[7-9]\.|[1-9][0-9]\.)' \
    || die "redis-server 6.2 or later is needed (XAUTOCLAIM): $(redis-server --version)"
  if redis_up; then return; fi
  mkdir -p /tmp/gateway-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /tmp/gateway-redis --logfile /tmp/gateway-redis/redis.log \
    || die "redis-server failed to start"
  wait_for 30 "Redis on 127.0.0.1:$REDIS_PORT" redis_up
}

ensure_wrk() {  # the load generator of the benchmark harness (and its smoke test)
  command -v wrk >/dev/null || apt_install wrk
}

ensure_chromium() {  # Debian's package, never a browser Playwright downloads
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then return; fi
  apt_install chromium
  command -v chromium >/dev/null || die "chromium is still missing after apt-get install chromium"
}

ensure_postgres
ensure_redis
ensure_wrk
ensure_chromium
echo "services: PostgreSQL 127.0.0.1:$PG_PORT and Redis 127.0.0.1:$REDIS_PORT are up; redis-server (cluster, sentinel), wrk and chromium are installed" >&2
