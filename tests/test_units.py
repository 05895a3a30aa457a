"""`nsuwsgi systemd` and docs/systemd/: the shipped unit files are the command's output.

Whether the units work is checked under a real systemd in vm-tests/test_systemd_real.py; this
file checks that what users copy and what the command prints are the same text, that the
choices the guides promise are in them, and that the Vagrantfile validates where vagrant is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nsuwsgi import units

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "systemd"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nsuwsgi", "systemd", *args],
                          capture_output=True, text=True, timeout=30)


def test_docs_systemd_holds_exactly_the_default_output():
    shipped = {path.name: path.read_text() for path in DOCS.iterdir()}
    assert shipped == units.render(), \
        "docs/systemd/ is stale: run `.venv/bin/python -m nsuwsgi systemd --output docs/systemd`"


def test_output_writes_every_unit_with_the_given_paths(tmp_path):
    done = run_cli("--output", str(tmp_path), "--binary", "/opt/nsuwsgi/bin/nsuwsgi",
                   "--emperor-ini", "/srv/emperor.ini", "--apps-dir", "/srv/apps")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(units.UNITS)
    service = (tmp_path / "emperor.nsuwsgi.service").read_text()
    assert "ExecStart=/opt/nsuwsgi/bin/nsuwsgi --ini /srv/emperor.ini\n" in service
    app = (tmp_path / "nsuwsgi-app@.service").read_text()
    assert "--ini /srv/apps/%i.ini --socket /run/nsuwsgi-apps/%i.socket" in app


def test_printing_one_unit_and_an_unknown_unit_is_a_clear_error():
    done = run_cli("nsuwsgi.conf")
    assert done.returncode == 0
    assert done.stdout.startswith("### nsuwsgi.conf\n")
    assert "d /run/nsuwsgi 0755 www-data www-data -" in done.stdout
    bad = run_cli("emperor.service")
    assert bad.returncode == 2
    assert bad.stderr.startswith("nsuwsgi: error: systemd: unknown unit emperor.service")
    assert "hint: choose from emperor.nsuwsgi.service" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_emperor_unit_makes_the_promised_choices():
    service = units.render()["emperor.nsuwsgi.service"]
    lines = set(service.splitlines())
    for line in ("Type=notify", "NotifyAccess=main", "KillSignal=SIGTERM", "KillMode=mixed",
                 "RuntimeDirectory=nsuwsgi", "ExecReload=/bin/kill -HUP $MAINPID",
                 "StandardError=journal", "WatchdogSec=30", "Restart=on-failure"):
        assert line in lines, line
    assert not any(line.startswith("User=") for line in lines)   # jails need a root Emperor
    unprivileged = units.render({"emperor_user": "www-data"})["emperor.nsuwsgi.service"]
    assert "User=www-data\nGroup=www-data\n" in unprivileged


def test_socket_units_keep_their_sockets_out_of_the_runtime_directory():
    rendered = units.render()
    for name in ("emperor.nsuwsgi.socket", "nsuwsgi-app@.socket"):
        listen = [line for line in rendered[name].splitlines() if line.startswith("ListenStream=")]
        assert listen and not any("/run/nsuwsgi/" in line for line in listen), name


def test_vagrantfile_validates_where_vagrant_is_installed():
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.skip("vagrant is not installed (scripts/setup.sh installs it as root)")
    env = dict(os.environ, VAGRANT_HOME=str(ROOT / "var" / "vagrant-home"),
               VAGRANT_CHECKPOINT_DISABLE="1")
    done = subprocess.run([vagrant, "validate"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully" in done.stdout
