"""Fixtures for tests/ and vm-tests/; the machinery itself lives in support.py."""

from support import hygiene, nsuwsgi, sockdir, subreaper  # noqa: F401 - pytest fixtures
