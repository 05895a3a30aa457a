"""examples/quickstart/: the files docs/quickstart.md installs load and validate.

They are written for their real places (/etc/nsuwsgi, /srv/nsuwsgi, /run/nsuwsgi). The tests
copy them with those prefixes moved under tmp_path, build each tenant's root filesystem with
the exact `nsuwsgi rootfs` command written in the vassal file's header (so the comment and the
config cannot drift apart), and load each vassal as the Emperor starts it (its argv, from its
file's directory). A jail needs root, so the full check runs as root; as a normal user every
problem left must be one that only root can solve.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from nsuwsgi import options
from nsuwsgi.config import load, load_config
from nsuwsgi.emperor import monitor
from nsuwsgi.emperor.vassal import vassal_argv
from nsuwsgi.errors import ConfigErrors
from nsuwsgi.rootfs import main as rootfs_main

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"
DOC = ROOT / "docs" / "quickstart.md"
PREFIXES = ("/etc/nsuwsgi", "/srv/nsuwsgi", "/run/nsuwsgi")
# What docs/quickstart.md promises about each tenant: its uid/gid and dropbear's address.
TENANTS = {"app1": 10001, "app2": 10002}
DROPBEAR = "127.0.0.1:2201"


def relocated(text: str, base: Path) -> str:
    for prefix in PREFIXES:
        text = text.replace(prefix, str(base) + prefix)
    return text


@pytest.fixture
def installed(tmp_path):
    """The quickstart's files installed under tmp_path, as its steps install them."""
    etc = tmp_path / "etc" / "nsuwsgi"
    (etc / "vassals").mkdir(parents=True)
    (tmp_path / "run" / "nsuwsgi").mkdir(parents=True)
    (tmp_path / "srv" / "nsuwsgi").mkdir(parents=True)
    for source in QUICKSTART.rglob("*.ini"):
        target = etc / source.relative_to(QUICKSTART)
        target.write_text(relocated(source.read_text(), tmp_path))
    return tmp_path


def rootfs_command(vassal: Path) -> list[str]:
    """The `nsuwsgi rootfs ...` line of a vassal file's header comment, as arguments."""
    found = re.findall(r"^;\s+nsuwsgi rootfs (.+)$", vassal.read_text(), re.M)
    assert len(found) == 1, f"{vassal} names no (or several) 'nsuwsgi rootfs' commands"
    return shlex.split(found[0])


def build_tenant(base: Path, name: str) -> Path:
    argv = [relocated(arg, base) for arg in rootfs_command(QUICKSTART / "vassals" / f"{name}.ini")]
    assert rootfs_main(argv) == 0
    root = base / "srv" / "nsuwsgi" / name
    home = root / "home" / name
    assert home.is_dir()
    (home / "app.py").write_text((ROOT / "examples" / "hello_app.py").read_text())
    return root


def load_emperor(base: Path):
    return load_config(["--ini", str(base / "etc" / "nsuwsgi" / "emperor.ini")], {}, "/")


def vassal_files(base: Path) -> list[Path]:
    vassals = base / "etc" / "nsuwsgi" / "vassals"
    return sorted(p for p in vassals.iterdir() if monitor.is_vassal_name(p.name))


def load_vassal(emperor, path: Path):
    argv = vassal_argv(["nsuwsgi"], emperor, str(path))[1:]
    return load_config(argv, {}, str(path.parent))


# --------------------------------------------------------------------------- tests

def test_the_quickstart_has_exactly_these_files():
    """A new file in examples/quickstart/ needs a test here (and a place in the quickstart)."""
    files = sorted(str(p.relative_to(QUICKSTART)) for p in QUICKSTART.rglob("*") if p.is_file())
    assert files == ["emperor.ini", "vassals/app1.ini", "vassals/app2.ini"]


def test_every_key_is_a_supported_option():
    """No typo, no ignored and no refused uWSGI option, whoever runs the test."""
    for path in sorted(QUICKSTART.rglob("*.ini")):
        loaded = load(["--ini", str(path)], {}, "/")
        assert loaded.placeholders == {}, path
        for entry in loaded.entries:
            opt = options.lookup(entry.key)
            assert opt is not None, f"{entry.origin}: unknown option {entry.key}"
            assert opt.status == options.SUPPORTED, f"{entry.origin}: {entry.key} is {opt.status}"


def test_emperor_ini_loads(installed):
    emperor = load_emperor(installed)
    assert emperor.ignored == ()
    assert list(emperor["emperor"]) == [str(installed / "etc" / "nsuwsgi" / "vassals")]
    assert emperor["emperor-stats"] == str(installed / "run" / "nsuwsgi" / "emperor-stats.sock")
    # The Emperor stays root: each vassal needs root to build its jail, then drops itself.
    assert emperor["uid"] is None and emperor["gid"] is None
    assert [p.name for p in vassal_files(installed)] == ["app1.ini", "app2.ini"]


def test_the_emperor_unit_runs_this_emperor_ini():
    unit = ROOT / "docs" / "systemd" / "emperor.nsuwsgi.service"
    if not unit.exists():
        pytest.skip("docs/systemd/emperor.nsuwsgi.service is not there yet")
    text = unit.read_text()
    assert "ExecStart=/usr/local/bin/nsuwsgi --ini /etc/nsuwsgi/emperor.ini" in text
    # /run/nsuwsgi, where the Emperor's and the vassals' sockets go, is the unit's.
    assert "RuntimeDirectory=nsuwsgi" in text


def test_vassals_load_as_root(installed):
    if os.geteuid() != 0:
        pytest.skip("jailed vassals need root (see test_vassals_need_only_root)")
    for name in TENANTS:
        build_tenant(installed, name)
    emperor = load_emperor(installed)
    run = installed / "run" / "nsuwsgi"
    for path in vassal_files(installed):
        name = path.stem
        config = load_vassal(emperor, path)
        assert config.ignored == (), path
        rootfs, hostname = config["namespace"]
        assert (rootfs, hostname) == (str(installed / "srv" / "nsuwsgi" / name), name)
        assert [(k.source, k.readonly) for k in config["namespace-keep-mount"]] == \
            [("/usr", True)]
        # Its own uid in its jail: the one `nsuwsgi rootfs --user` wrote into its passwd.
        assert (config["uid"], config["gid"]) == (TENANTS[name], TENANTS[name])
        passwd = (Path(rootfs) / "etc" / "passwd").read_text()
        assert f"{name}:x:{TENANTS[name]}:{TENANTS[name]}:" in passwd
        assert [s.address for s in config["http-socket"]] == [str(run / f"{name}.sock")]
        assert config["stats"] == str(run / f"{name}-stats.sock")
        assert config["wsgi-file"] == f"/home/{name}/app.py"
    app1 = load_vassal(emperor, installed / "etc" / "nsuwsgi" / "vassals" / "app1.ini")
    assert not app1["namespace-net"]        # dropbear listens on the host's loopback
    commands = [d.command for d in app1.daemons]
    assert len(commands) == 1 and commands[0].startswith("/usr/sbin/dropbear ")
    assert f"-p {DROPBEAR}" in commands[0]
    app2 = load_vassal(emperor, installed / "etc" / "nsuwsgi" / "vassals" / "app2.ini")
    assert app2["namespace-net"] and not app2.daemons


def test_vassals_need_only_root(installed):
    """As a normal user, every problem in the vassal files is one only root can solve."""
    if os.geteuid() == 0:
        pytest.skip("as root the vassals load completely (test_vassals_load_as_root)")
    for name in TENANTS:
        build_tenant(installed, name)
    emperor = load_emperor(installed)
    for path in vassal_files(installed):
        with pytest.raises(ConfigErrors) as caught:
            load_vassal(emperor, path)
        for err in caught.value.errors:
            assert "root" in err.message, f"{path}: {err}"


def test_the_quickstart_names_what_the_files_need():
    """docs/quickstart.md installs what the files refer to, at the same places."""
    if not DOC.exists():
        pytest.skip("docs/quickstart.md is not there yet")
    doc = DOC.read_text()
    for name in TENANTS:
        assert " ".join(["nsuwsgi rootfs", *rootfs_command(QUICKSTART / "vassals" /
                                                            f"{name}.ini")]) in doc
        assert f"/srv/nsuwsgi/{name}/home/{name}/app.py" in doc
    assert DROPBEAR.split(":")[1] in doc and "dropbear_ed25519_host_key" in doc
    for path in ("examples/quickstart/emperor.ini", "examples/quickstart/vassals/app1.ini",
                 "examples/quickstart/vassals/app2.ini", "docs/systemd/emperor.nsuwsgi.service"):
        assert path in doc, path


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_the_quickstart_links_resolve():
    """Every relative link of docs/quickstart.md names a file that exists (and a heading)."""
    if not DOC.exists():
        pytest.skip("docs/quickstart.md is not there yet")
    text = re.sub(r"```.*?```", "", DOC.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (DOC.parent / path).resolve() if path else DOC
        assert resolved.exists(), f"docs/quickstart.md links to a missing {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"docs/quickstart.md: no heading for {target}"
