#!/usr/bin/env bash
# Sets up nsuwsgi and runs the embedded demo in the foreground: a master serving a small app
# with 2 workers and supervising memcached, redis-server and a small ticker. As root all of it
# runs jailed (its own PID, mount, UTS, IPC and network namespaces in a busybox rootfs built
# with `nsuwsgi rootfs`); otherwise it runs plainly. Ctrl-C (SIGINT) stops it; `kill -HUP <pid>` reloads it.
# DEMO_SECONDS=N stops it after N seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
mkdir -p var/demo
chmod 0777 var/demo      # memcached drops to nobody before it creates its socket
if [ "$(id -u)" = 0 ]; then
  .venv/bin/nsuwsgi rootfs var/demo/root --usr-from-host >/dev/null
  chmod 1777 var/demo/root/tmp
  cp examples/hello_app.py var/demo/root/app.py
  config=examples/demo-jail.ini
  sockets="$here/var/demo/root/tmp"
else
  config=examples/demo.ini
  sockets="$here/var/demo"
fi
echo "demo: $config: memcached at unix:$sockets/memcached.sock, redis at unix:$sockets/redis.sock"
echo "demo: the app: curl --unix-socket $here/var/demo/app.sock http://tenant/"
echo "demo: stats: .venv/bin/python -m nsuwsgi.stats var/demo/stats.sock"
if [ -n "${DEMO_SECONDS:-}" ]; then
  exec timeout --signal=TERM "$DEMO_SECONDS" .venv/bin/nsuwsgi --ini "$config"
fi
exec .venv/bin/nsuwsgi --ini "$config"
