"""The fork-server's warm-up: it must keep running the paths it is meant to warm.

warm_up() reads a made-up config with the vassal's loaders and serves made-up requests with
the worker's code, so that the pages CPython writes the first time code runs (call counters,
specialised bytecode, type caches) are written once in the fork-server and stay shared with
every vassal. It is an optimisation that fails silently in production; this test is what
notices when a change to the loaders or the worker's internals stops it from running.
"""

from __future__ import annotations

import subprocess
import sys

from nsuwsgi.emperor import forkserver


def test_the_warm_up_runs_the_config_and_request_paths_to_the_end():
    assert forkserver.warm_up(rounds=2) is True
    assert not [m for m in sys.modules if m.startswith("uwsgi_file_")], "the made-up app is forgotten"


# In a fresh interpreter: preload as serve() does, then do what a vassal master and its worker
# do with a typical vassal file, and list what that still had to import.
VASSAL_AFTER_PRELOAD = """
import importlib, sys
from nsuwsgi.emperor import forkserver
for name in forkserver.VASSAL_MODULES:
    importlib.import_module(name)
forkserver.warm_up(rounds=1)
before = set(sys.modules)
from nsuwsgi.config import load_config
from nsuwsgi.master import import_what_config_needs
from nsuwsgi.server.apps import load_apps
config = load_config(["--ini", sys.argv[1]], {}, "/")
import_what_config_needs(config)
load_apps(config, chdir=False)
print(" ".join(sorted(m for m in set(sys.modules) - before if not m.startswith("uwsgi_file_"))))
"""


def test_a_vassal_imports_nothing_the_fork_server_did_not_preload(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("def application(environ, start_response):\n    return [b'ok']\n")
    vassal = tmp_path / "vassal.ini"
    vassal.write_text(f"[uwsgi]\nmaster = true\nprocesses = 1\n"
                      f"http-socket = {tmp_path / 'v.sock'}\nwsgi-file = {app}\n",
                      encoding="utf-8-sig")
    done = subprocess.run([sys.executable, "-c", VASSAL_AFTER_PRELOAD, str(vassal)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], "imported after the fork: add them to VASSAL_MODULES"


def test_the_warm_up_leaves_no_timer_handler_or_socket_behind():
    import os
    import signal
    before = sorted(os.listdir("/proc/self/fd"))
    handler = signal.getsignal(signal.SIGALRM)
    assert forkserver.warm_up(rounds=3) is True
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is handler
    assert sorted(os.listdir("/proc/self/fd")) == before


# What registers an after-fork hook in the stdlib: threading (its hook alone made every forked
# process ~0.4 MB bigger, measured with smaps_rollup), random (it reseeds), logging.
FORK_SERVER_MODULES = """
import importlib, sys
from nsuwsgi.emperor import forkserver
for name in forkserver.VASSAL_MODULES:
    importlib.import_module(name)
forkserver.warm_up(rounds=1)
print(" ".join(sorted(m for m in ("threading", "random", "logging") if m in sys.modules)))
"""


def test_the_fork_server_imports_nothing_with_an_after_fork_hook():
    done = subprocess.run([sys.executable, "-c", FORK_SERVER_MODULES], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


REPLACE_ENVIRON = """
import os
from nsuwsgi.emperor.forkserver import replace_environ
os.environ.clear()
os.environ.update({"KEEP": "same", "CHANGE": "old", "DROP": "x"})
kept = os.environ._data[b"KEEP"]
replace_environ({"KEEP": "same", "CHANGE": "new", "ADD": "y"})
assert dict(os.environ) == {"KEEP": "same", "CHANGE": "new", "ADD": "y"}, dict(os.environ)
assert os.environ._data[b"KEEP"] is kept, "an unchanged entry was replaced"
import subprocess                       # env=None: the child gets the C environ
seen = subprocess.run(["env"], capture_output=True, text=True, env=None).stdout.split()
assert sorted(seen) == ["ADD=y", "CHANGE=new", "KEEP=same"], seen
print("ok")
"""


def test_a_vassal_environment_replaces_only_what_differs():
    done = subprocess.run([sys.executable, "-c", REPLACE_ENVIRON], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_warm_up_that_hangs_is_cut_short_and_cleans_up():
    """Only an optimisation: a loop that does not finish must not hold the fork-server."""
    import os
    import signal
    import time
    from nsuwsgi.config import load_config

    def stuck_app(environ, start_response):
        time.sleep(30)                  # interrupted by the warm-up's timer
        start_response("200 OK", [])
        return [b""]

    config = forkserver.run_from_memfd(forkserver.WARM_UP_CONFIG, 1,
                                       lambda path: load_config(["--ini", path], {}, "/"))
    before = sorted(os.listdir("/proc/self/fd"))
    started = time.monotonic()
    assert forkserver.warm_up_requests(config, stuck_app, 2) is False
    assert time.monotonic() - started < forkserver.WARM_UP_TIMEOUT + 5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert sorted(os.listdir("/proc/self/fd")) == before
