"""The fork-server's warm-up: it must keep running the paths it is meant to warm.

warm_up() reads a made-up config with the vassal's loaders and serves made-up requests with
the worker's code, so that the pages CPython writes the first time code runs (call counters,
specialised bytecode, type caches) are written once in the fork-server and stay shared with
every vassal. It is an optimisation that fails silently in production; this test is what
notices when a change to the loaders or the worker's internals stops it from running.
"""

from __future__ import annotations

import sys

from nsuwsgi.emperor import forkserver


def test_the_warm_up_runs_the_config_and_request_paths_to_the_end():
    assert forkserver.warm_up(rounds=2) is True
    assert not [m for m in sys.modules if m.startswith("uwsgi_file_")], "the made-up app is forgotten"


def test_the_modules_a_vassal_loads_lazily_are_preloaded():
    assert {"encodings.utf_8_sig", "runpy"} <= set(forkserver.VASSAL_MODULES)
