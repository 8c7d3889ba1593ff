# Sourced by ./lab test: use the real PostgreSQL and Redis on 127.0.0.1 when they are there (start them when they are
# installed but down), else fall back to SQLite and the embedded Redis. Ensure Chromium for the browser tests.
port_open() { "$VENV/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
if [ -z "${DATABASE_URL:-}" ] && port_open 5432; then
  export DATABASE_URL="postgres://${PGUSER:-postgres}@127.0.0.1:5432/${LABBOOK_TEST_DB:-labbook}"
fi
if [ -z "${REDIS_URL:-}" ] && port_open 6379; then
  export REDIS_URL="redis://127.0.0.1:6379/${LABBOOK_TEST_REDIS_DB:-15}"
fi
log "tests use database ${DATABASE_URL:-SQLite (default)} and redis ${REDIS_URL:-embedded}"

if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Chromium for the browser tests (Debian package)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || log "could not install chromium"
  else
    log "Chromium is missing: install it (e.g. sudo apt-get install chromium) or set CHROMIUM=/path; browser tests will fail"
  fi
fi
