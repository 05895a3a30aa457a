"""The shipped examples load cleanly (the README's demo runs examples/demo.ini)."""

from pathlib import Path

from support import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_demo_config_loads_without_warnings_or_errors():
    result = run_cli("--ini", str(ROOT / "examples" / "demo.ini"), "--show-config")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "attach-daemon = memcached -s" in result.stdout
    assert "var/demo/memcached.sock" in result.stdout
