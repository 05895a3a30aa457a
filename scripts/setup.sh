#!/usr/bin/env bash
# Installs everything nsuwsgi's demo, tests and benchmarks need on Debian 12, idempotently:
# Debian packages through apt-get (only when running as root), then a virtualenv in .venv
# holding nsuwsgi (editable) and its Python dependencies. Safe to run again and again.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

DEBS=(
  # build and runtime of nsuwsgi itself
  python3 python3-venv python3-dev gcc libcap-dev
  # real daemons the tests supervise
  memcached redis-server busybox-static dropbear-bin
  # the reference implementation the benchmarks compare against
  uwsgi-core uwsgi-plugin-python3
  # tools the tests and benchmarks use
  procps iproute2 psmisc util-linux bubblewrap wrk systemd nginx-light cgit git curl
  systemd-container debootstrap
  # the Vagrantfile is checked with `vagrant validate` (which needs a provider plugin)
  vagrant vagrant-libvirt
)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' own services from starting: tests start their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
else
  echo "setup: not root, skipping Debian packages (need: ${DEBS[*]})"
fi

# Debian's interpreter: it starts in ~12 ms and lives outside /root, so it stays importable
# after a test drops privileges to nobody.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.nsuwsgi-installed-2
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  # A plain path .pth ("compat" editable mode) costs nothing at startup; the default
  # import-hook finder costs ~16 ms on every start (the cold-start figure of issue 4).
  .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat 2>/dev/null \
    || .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
# Up-to-date .pyc files even where PYTHONDONTWRITEBYTECODE is set: otherwise every start
# recompiles the changed modules (a third of a cold start, measured in issue 4).
.venv/bin/python -m compileall -q nsuwsgi >/dev/null
echo "setup: ready (.venv/bin/nsuwsgi)"
