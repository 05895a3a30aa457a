#!/usr/bin/env bash
# Sets up nsuwsgi and runs the embedded demo in the foreground: one master supervising a
# memcached, a redis-server and a small Python ticker, all on unix sockets under ./var/demo.
# Ctrl-C (SIGINT) stops it; `kill -HUP <pid>` reloads it. DEMO_SECONDS=N stops it after N s.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
mkdir -p var/demo
chmod 0777 var/demo      # memcached drops to nobody before it creates its socket
echo "demo: memcached at unix:$here/var/demo/memcached.sock, redis at unix:$here/var/demo/redis.sock"
echo "demo: stats: .venv/bin/python -m nsuwsgi.stats var/demo/stats.sock"
if [ -n "${DEMO_SECONDS:-}" ]; then
  exec timeout --signal=TERM "$DEMO_SECONDS" .venv/bin/nsuwsgi --ini examples/demo.ini
fi
exec .venv/bin/nsuwsgi --ini examples/demo.ini
