#!/usr/bin/env bash
# Sets up nsuwsgi and runs the demo in the foreground: an Emperor (examples/emperor.ini)
# governing two tenants, one vassal file each: tenant1, an app that counts its hits in its own
# memcached (a sidecar daemon), and tenant2, a hello app. As root each tenant runs in its own
# jail (PID, mount, UTS, IPC and network namespaces, only lo inside, a busybox rootfs built
# with `nsuwsgi rootfs`, its own hostname) from examples/vassals/; otherwise the same tenants
# run without jails from examples/vassals-plain/. Editing or touching a vassal file reloads
# that tenant. Ctrl-C (SIGINT) stops everything; `kill -HUP <pid>` reloads every tenant.
# DEMO_SECONDS=N stops it after N seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
mkdir -p var/demo
if [ "$(id -u)" = 0 ]; then
  chmod 0777 var/demo    # memcached drops to nobody before it creates its socket
  for tenant in tenant1 tenant2; do
    .venv/bin/nsuwsgi rootfs "var/demo/$tenant-root" --usr-from-host >/dev/null
    chmod 1777 "var/demo/$tenant-root/tmp"
  done
  cp examples/counter_app.py var/demo/tenant1-root/app.py
  cp examples/hello_app.py var/demo/tenant2-root/app.py
  vassals=vassals
  what="each tenant in its own jail"
  memcached="$here/var/demo/tenant1-root/tmp/memcached.sock"
else
  vassals=vassals-plain
  what="not root: no jails"
  memcached="$here/var/demo/tenant1-memcached.sock"
fi
# The placeholder must come before --ini: the first value of a placeholder wins.
cmd=(.venv/bin/nsuwsgi --set-placeholder "vassals=$vassals" --ini examples/emperor.ini)
echo "demo: an Emperor governing examples/$vassals/ ($what)"
echo "demo: tenant1, hits counted in memcached: curl --unix-socket $here/var/demo/tenant1.sock http://tenant/"
echo "demo: tenant1's memcached: unix:$memcached"
echo "demo: tenant2, hello: curl --unix-socket $here/var/demo/tenant2.sock http://tenant/"
echo "demo: stats: .venv/bin/python -m nsuwsgi.stats var/demo/emperor-stats.sock"
echo "demo: a tenant's own stats: .venv/bin/python -m nsuwsgi.stats var/demo/tenant1-stats.sock"
if [ -n "${DEMO_SECONDS:-}" ]; then
  exec timeout --signal=TERM "$DEMO_SECONDS" "${cmd[@]}"
fi
exec "${cmd[@]}"
