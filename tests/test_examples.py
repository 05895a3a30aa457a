"""The shipped examples load cleanly (the README's demo runs examples/demo.ini)."""

from pathlib import Path

from support import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_demo_config_loads_without_warnings_or_errors(tmp_path):
    """As scripts/demo.sh runs it: examples/ next to a var/demo it created."""
    import shutil
    (tmp_path / "examples").mkdir()
    (tmp_path / "var" / "demo").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "demo.ini", tmp_path / "examples")
    result = run_cli("--ini", str(tmp_path / "examples" / "demo.ini"), "--show-config")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "attach-daemon = memcached -s" in result.stdout
    assert "var/demo/memcached.sock" in result.stdout


def test_jailed_demo_config_loads_as_root(tmp_path):
    import os
    import shutil

    import pytest

    if os.geteuid() != 0:
        pytest.skip("the jailed demo needs root")
    from nsuwsgi.rootfs import build_rootfs
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "demo-jail.ini", tmp_path / "examples")
    build_rootfs(str(tmp_path / "var" / "demo" / "root"), usr_from_host=True)
    result = run_cli("--ini", str(tmp_path / "examples" / "demo-jail.ini"), "--show-config")
    assert result.returncode == 0, result.stderr
    assert "namespace = " in result.stdout and ":demo-tenant" in result.stdout
