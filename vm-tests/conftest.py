"""Root-only tests: real uid/gid drops (and, later, namespaces, mounts and jails).

They run as root on CI (a disposable VM) and in the Vagrant box; elsewhere they skip with the
reason. The shared machinery comes from tests/support.py (on the pytest pythonpath).
"""

import os

import pytest

from support import hygiene, nsuwsgi, sockdir, subreaper  # noqa: F401 - pytest fixtures


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="vm-tests need root (run them in the Vagrant box or on CI)")
    for item in items:
        if "vm-tests" in str(item.fspath):
            item.add_marker(skip)
