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


def _emperor_demo_tree(tmp_path):
    """examples/ as scripts/demo.sh uses it for the Emperor demo, next to a var/demo."""
    import shutil
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "var" / "demo").mkdir(parents=True)
    return tmp_path / "examples"


def _load_vassals(examples, vassals_dir):
    """Load examples/emperor.ini as demo.sh does, then each vassal file with the argv the
    Emperor would give it (its vassal-set placeholders included), from the file's directory."""
    import os

    from nsuwsgi.config import load_config
    from nsuwsgi.emperor import monitor
    from nsuwsgi.emperor.vassal import vassal_argv

    emperor = load_config(["--set-placeholder", f"vassals={vassals_dir}",
                           "--ini", str(examples / "emperor.ini")], {}, str(examples.parent))
    assert emperor.ignored == ()
    assert os.path.samefile(emperor["emperor"][0], examples / vassals_dir)
    assert any(s.startswith("demo=") for s in emperor["vassal-set"])
    files = sorted(p for p in (examples / vassals_dir).iterdir()
                   if monitor.is_vassal_name(p.name))
    assert [p.name for p in files] == ["tenant1.ini", "tenant2.ini"]
    loaded = {}
    for path in files:
        argv = vassal_argv(["nsuwsgi"], emperor, str(path))[1:]
        config = load_config(argv, {}, str(path.parent))
        assert config.ignored == (), path
        loaded[path.stem] = config
    return loaded


def test_plain_vassal_examples_load(tmp_path):
    """examples/vassals-plain/: the demo's tenants without jails (demo.sh as a normal user)."""
    examples = _emperor_demo_tree(tmp_path)
    loaded = _load_vassals(examples, "vassals-plain")
    demo = str(tmp_path / "examples" / ".." / "var" / "demo")
    for tenant, config in loaded.items():
        assert [s.address for s in config["http-socket"]] == [f"{demo}/{tenant}.sock"]
        assert config["namespace"] is None
    assert any(f"{demo}/tenant1-memcached.sock" in d.command
               for d in loaded["tenant1"].daemons)


def test_jailed_vassal_examples_load_as_root(tmp_path):
    """examples/vassals/: each tenant in its own jail, over the rootfs demo.sh builds."""
    import os

    import pytest

    if os.geteuid() != 0:
        pytest.skip("the jailed vassals need root")
    from nsuwsgi.rootfs import build_rootfs
    examples = _emperor_demo_tree(tmp_path)
    for tenant in ("tenant1", "tenant2"):
        build_rootfs(str(tmp_path / "var" / "demo" / f"{tenant}-root"), usr_from_host=True)
    loaded = _load_vassals(examples, "vassals")
    for tenant, config in loaded.items():
        assert config["namespace"] is not None and config["namespace-net"], tenant
        assert [s.address for s in config["http-socket"]] == [
            str(tmp_path / "examples" / ".." / "var" / "demo" / f"{tenant}.sock")]
    assert any("memcached" in d.command for d in loaded["tenant1"].daemons)
