"""`nsuwsgi rootfs`: building, rebuilding and checking tenant root filesystems.

Everything is built into tmp_path from the host's static busybox (Debian's busybox-static,
installed by scripts/setup.sh). Device nodes need root; the test that checks them says so when
it skips, and the placeholder path is exercised everywhere by denying mknod.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nsuwsgi import rootfs
from nsuwsgi.errors import EXIT_CONFIG, EXIT_OK, UserError
from nsuwsgi.rootfs import build_rootfs, check_rootfs

BUSYBOX = Path(rootfs.BUSYBOX)
needs_busybox = pytest.mark.skipif(
    not BUSYBOX.is_file() or rootfs.elf_interpreter(str(BUSYBOX)) is not None,
    reason=f"needs a static {BUSYBOX}: apt-get install busybox-static (scripts/setup.sh)")
pytestmark = needs_busybox
IS_ROOT = os.geteuid() == 0
REQUIRED_APPLETS = ("sh", "ls", "cat", "ps", "hostname", "id", "mount", "echo", "sleep",
                    "true", "false", "env", "kill", "grep")


@pytest.fixture(scope="module")
def applets():
    listing = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    return {p.rpartition("/")[2]: ("sbin" if p.rpartition("/")[0] in ("sbin", "usr/sbin")
                                   else "bin")
            for p in listing if p not in ("linuxrc", "bin/busybox")}


def jail_mounts(*mounts: str) -> list[str]:
    """What the jail will mount: `mounts`, plus /dev/null over the placeholder when not root."""
    return list(mounts) + ([] if IS_ROOT else ["/dev/null"])


def build(root: Path, **kwargs) -> list[str]:
    warnings: list[str] = []
    build_rootfs(str(root), warn=warnings.append, **kwargs)
    return warnings


def deny_mknod(monkeypatch):
    def mknod(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "mknod", mknod)


def snapshot(root: Path) -> dict:
    """Every entry under root: type, mode, owner, and content or link target."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                detail = path.read_bytes()
            else:
                detail = st.st_rdev
            tree[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode),
                                                 stat.S_IMODE(st.st_mode), st.st_uid, detail)
    return tree


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith("nsuwsgi: warning: ")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("nsuwsgi: error: "), stderr
    return lines[0]


# ---------------------------------------------------------------- layout


def test_directories_and_modes(tmp_path):
    root = tmp_path / "jail"
    build(root)
    modes = {"bin": 0o755, "sbin": 0o755, "etc": 0o755, "etc/dropbear": 0o755, "dev": 0o755,
             "dev/pts": 0o755, "dev/shm": 0o1777, "proc": 0o555, "sys": 0o555,
             "tmp": 0o1777, "run": 0o755, "var/tmp": 0o1777, "root": 0o700, "home": 0o755,
             "usr": 0o755}
    for name, mode in modes.items():
        st = (root / name).lstat()
        assert stat.S_ISDIR(st.st_mode), name
        assert stat.S_IMODE(st.st_mode) == mode, f"{name}: {oct(st.st_mode)}"
    assert list((root / "usr").iterdir()) == []
    assert not (root / "lib").is_symlink() and not (root / "lib").exists()
    assert check_rootfs(str(root)) == []


def test_busybox_and_applet_links(tmp_path, applets):
    root = tmp_path / "jail"
    build(root)
    copy = root / "bin/busybox"
    assert copy.read_bytes() == BUSYBOX.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o755 and not copy.is_symlink()
    for name in REQUIRED_APPLETS:
        assert name in applets
    for name, folder in applets.items():
        link = root / folder / name
        assert link.is_symlink(), link
        assert os.readlink(link) == ("busybox" if folder == "bin" else "../bin/busybox")
        assert link.resolve() == copy.resolve()
    assert (root / "sbin/mount").exists() or (root / "bin/mount").is_symlink()
    assert not (root / "linuxrc").exists()


def test_sh_runs(tmp_path):
    root = tmp_path / "jail"
    build(root)
    direct = subprocess.run([root / "bin/busybox", "sh", "-c", "echo ok"],
                            capture_output=True, text=True, timeout=10)
    assert direct.stdout == "ok\n" and direct.returncode == 0
    via_link = subprocess.run([root / "bin/sh", "-c", "echo $((6*7)); true && ls /"],
                              capture_output=True, text=True, timeout=10)
    assert via_link.returncode == 0 and via_link.stdout.startswith("42\n")


def test_passwd_group_and_homes(tmp_path):
    root = tmp_path / "jail"
    build(root, users=["www-data:33:33", "alice:1000:1000", ("bob", 1001, 33)])
    passwd = (root / "etc/passwd").read_text().splitlines()
    assert passwd[0] == "root:x:0:0:root:/root:/bin/sh"
    assert "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin" in passwd
    assert "www-data:x:33:33::/home/www-data:/bin/sh" in passwd
    assert "alice:x:1000:1000::/home/alice:/bin/sh" in passwd
    assert "bob:x:1001:33::/home/bob:/bin/sh" in passwd
    group = (root / "etc/group").read_text().splitlines()
    assert group == ["root:x:0:", "nogroup:x:65534:", "www-data:x:33:", "alice:x:1000:"]
    home = (root / "home/alice").lstat()
    assert stat.S_ISDIR(home.st_mode) and stat.S_IMODE(home.st_mode) == 0o700
    if IS_ROOT:
        assert (home.st_uid, home.st_gid) == (1000, 1000)
    # busybox reads them as the jail would
    ids = subprocess.run([root / "bin/busybox", "grep", "-c", ":x:", root / "etc/passwd"],
                         capture_output=True, text=True)
    assert ids.stdout.strip() == "5"


def test_etc_files_and_marker(tmp_path):
    root = tmp_path / "jail"
    build(root)
    assert (root / "etc/hostname").read_text() == "localhost\n"
    assert "127.0.0.1\tlocalhost" in (root / "etc/hosts").read_text()
    nss = (root / "etc/nsswitch.conf").read_text()
    assert "passwd:    files" in nss and "group:     files" in nss
    assert "/bin/sh" in (root / "etc/shells").read_text().split()
    marker = (root / "etc/nsuwsgi-rootfs.txt").read_text()
    assert marker.startswith(rootfs.MARKER_TITLE)
    assert f"namespace = {root}:HOSTNAME" in marker
    assert "namespace-keep-mount = /usr" not in marker


def test_dev_links_and_dirs(tmp_path):
    root = tmp_path / "jail"
    build(root)
    dev = root / "dev"
    assert os.readlink(dev / "fd") == "/proc/self/fd"
    assert [os.readlink(dev / n) for n in ("stdin", "stdout", "stderr")] == [
        "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]
    assert (dev / "pts").is_dir() and (dev / "shm").is_dir()


@pytest.mark.skipif(not IS_ROOT, reason="mknod of character devices needs root "
                                        "(CAP_MKNOD); run the tests as root to cover it")
def test_device_nodes_as_root(tmp_path):
    root = tmp_path / "jail"
    assert build(root) == []
    expected = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                "urandom": (1, 9), "tty": (5, 0), "ptmx": (5, 2)}
    for name, (major, minor) in expected.items():
        st = (root / "dev" / name).lstat()
        assert stat.S_ISCHR(st.st_mode), name
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), name
        assert stat.S_IMODE(st.st_mode) == 0o666, name
    with open(root / "dev/null", "w") as f:
        f.write("discarded")
    assert (root / "dev/zero").open("rb").read(4) == b"\0\0\0\0"
    assert "Device nodes: real" in (root / "etc/nsuwsgi-rootfs.txt").read_text()


def test_placeholders_and_warning_without_mknod(tmp_path, monkeypatch):
    root = tmp_path / "jail"
    deny_mknod(monkeypatch)
    warnings = build(root)
    assert len(warnings) == 1
    assert "placeholder" in warnings[0] and "namespace-keep-mount = /dev/null" in warnings[0]
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        st = (root / "dev" / name).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0, name
        assert stat.S_IMODE(st.st_mode) == 0o666
    marker = (root / "etc/nsuwsgi-rootfs.txt").read_text()
    assert "namespace-keep-mount = /dev/null" in marker and "placeholders" in marker
    # the jail can't tell whether they will be mounted over, unless it says what it mounts
    assert check_rootfs(str(root)) == []
    assert any("placeholder" in p for p in check_rootfs(str(root), mounted=[]))
    assert check_rootfs(str(root), mounted=["/dev/null"]) == []


@pytest.mark.skipif(not IS_ROOT, reason="needs root to create the nodes the rebuild keeps")
def test_rebuild_without_mknod_keeps_real_nodes(tmp_path, monkeypatch):
    root = tmp_path / "jail"
    build(root)
    deny_mknod(monkeypatch)
    assert build(root) == []
    assert stat.S_ISCHR((root / "dev/null").lstat().st_mode)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to replace placeholders by nodes")
def test_rebuild_as_root_replaces_placeholders(tmp_path, monkeypatch):
    root = tmp_path / "jail"
    with monkeypatch.context() as m:
        deny_mknod(m)
        build(root)
    assert build(root) == []
    assert stat.S_ISCHR((root / "dev/null").lstat().st_mode)
    assert "Device nodes: real" in (root / "etc/nsuwsgi-rootfs.txt").read_text()


def test_usr_from_host(tmp_path):
    root = tmp_path / "jail"
    build(root, usr_from_host=True)
    assert list((root / "usr").iterdir()) == []
    assert os.readlink(root / "lib") == "usr/lib"
    assert os.readlink(root / "lib64") == "usr/lib64"
    for folder in ("bin", "sbin"):
        assert (root / folder).is_dir() and not (root / folder).is_symlink()
    assert os.readlink(root / "bin/sh") == "busybox"
    marker = (root / "etc/nsuwsgi-rootfs.txt").read_text()
    assert "namespace-keep-mount = /usr:/usr:ro" in marker
    assert check_rootfs(str(root), mounted=jail_mounts("/usr")) == []
    # dropping the option again removes the (then dangling) library links
    build(root)
    assert not os.path.lexists(root / "lib") and not os.path.lexists(root / "lib64")
    assert "namespace-keep-mount = /usr" not in (root / "etc/nsuwsgi-rootfs.txt").read_text()


# ---------------------------------------------------------------- rebuilding


def test_building_twice_changes_nothing(tmp_path):
    root = tmp_path / "jail"
    build(root, usr_from_host=True, users=["www-data:33:33"])
    first = snapshot(root)
    build(root, usr_from_host=True, users=["www-data:33:33"])
    assert snapshot(root) == first


def test_rebuild_keeps_tenant_changes(tmp_path):
    root = tmp_path / "jail"
    build(root, users=["alice:1000:1000"])
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n10.0.0.1 db\n")
    with open(root / "etc/passwd", "a") as f:
        f.write("carol:x:1002:1002::/home/carol:/bin/sh\n")
    (root / "bin/sh").unlink()
    shutil.copy(root / "bin/busybox", root / "bin/sh")     # the tenant's own shell
    (root / "srv").mkdir()
    (root / "srv/app.py").write_text("print('hi')\n")
    (root / "tmp").chmod(0o755)
    build(root, users=["dave:1003:1003"])
    assert "10.0.0.1 db" in (root / "etc/hosts").read_text()
    passwd = (root / "etc/passwd").read_text()
    assert "alice:x:1000" in passwd and "carol:x:1002" in passwd and "dave:x:1003" in passwd
    assert not (root / "bin/sh").is_symlink()
    assert (root / "srv/app.py").exists()
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777


def test_rebuild_refreshes_broken_applet_links(tmp_path):
    root = tmp_path / "jail"
    build(root)
    (root / "bin/ls").unlink()
    os.unlink(root / "bin/cat")
    os.symlink("/old/busybox", root / "bin/cat")
    build(root)
    assert os.readlink(root / "bin/ls") == "busybox"
    assert os.readlink(root / "bin/cat") == "busybox"


def test_an_interrupted_build_is_finished_without_force(tmp_path, monkeypatch):
    root = tmp_path / "jail"

    def disk_full(self):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(rootfs._Builder, "_etc", disk_full)
        with pytest.raises(OSError):
            build(root)
    assert (root / "bin/busybox").exists() and not (root / "etc/passwd").exists()
    build(root)
    assert "root:x:0:0" in (root / "etc/passwd").read_text()


def test_empty_directory_and_lost_found_are_fine(tmp_path):
    root = tmp_path / "mnt"
    (root / "lost+found").mkdir(parents=True)
    build(root)
    assert (root / "bin/busybox").exists()


def test_refuses_a_foreign_non_empty_directory(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "precious.txt").write_text("keep me\n")
    with pytest.raises(UserError) as caught:
        build(root)
    message = str(caught.value)
    assert "\n" not in message
    assert "not an nsuwsgi rootfs" in message and "--force" in message
    assert sorted(p.name for p in root.iterdir()) == ["precious.txt"]
    build(root, force=True)
    assert (root / "precious.txt").read_text() == "keep me\n"
    assert (root / "etc/nsuwsgi-rootfs.txt").exists()
    build(root)     # now it is ours: no --force needed


def test_force_still_refuses_a_symlink_where_a_directory_belongs(tmp_path):
    root = tmp_path / "debootstrapped"
    (root / "usr/bin").mkdir(parents=True)
    os.symlink("usr/bin", root / "bin")
    with pytest.raises(UserError, match="bin is a symlink"):
        build(root, force=True)
    assert list((root / "usr/bin").iterdir()) == []


def test_refuses_the_host_root_and_a_file(tmp_path):
    with pytest.raises(UserError, match="host's /"):
        build(Path("/"), force=True)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        build(target)


def test_never_writes_through_planted_symlinks(tmp_path):
    """A tenant who controls the tree must not make a root rebuild write outside it."""
    root = tmp_path / "jail"
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "passwd").write_text("host passwd\n")
    build(root, users=["alice:1000:1000"])
    (root / "etc/passwd").unlink()
    os.symlink(outside / "passwd", root / "etc/passwd")
    (root / "etc/hosts").unlink()
    os.symlink(outside / "hosts", root / "etc/hosts")
    build(root, users=["alice:1000:1000"])
    assert (outside / "passwd").read_text() == "host passwd\n"
    assert not (outside / "hosts").exists()
    assert not (root / "etc/passwd").is_symlink()
    assert "root:x:0:0" in (root / "etc/passwd").read_text()
    os.rmdir(root / "home/alice")
    os.symlink(outside, root / "home/alice")
    with pytest.raises(UserError, match="home/alice is a symlink"):
        build(root, users=["alice:1000:1000"])
    assert outside.stat().st_uid == os.geteuid()    # not chowned through the link
    shutil.rmtree(root / "etc")
    os.symlink(outside, root / "etc")
    with pytest.raises(UserError, match="etc is a symlink"):
        build(root, force=True)
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("spec, expected", [
    ("alice", "is not NAME:UID:GID"),
    ("alice:1000", "is not NAME:UID:GID"),
    ("alice:x:1000", "uid 'x' is not a number"),
    ("alice:1000:-1", "gid '-1' is not a number"),
    ("bad name:1:1", "is not a valid user name"),
    ("root:5:5", "built into every rootfs"),
    ("toor:0:0", "already belongs to 'root'"),
])
def test_bad_user_specs(tmp_path, spec, expected):
    with pytest.raises(UserError, match=expected) as caught:
        build(tmp_path / "jail", users=[spec])
    assert "\n" not in str(caught.value) and "--user" in str(caught.value)
    assert not (tmp_path / "jail").exists()


def test_user_clashes(tmp_path):
    with pytest.raises(UserError, match="given twice"):
        build(tmp_path / "a", users=["app:1000:1000", "app:1001:1001"])
    with pytest.raises(UserError, match="uid 1000 of 'web' already belongs to 'app'"):
        build(tmp_path / "b", users=["app:1000:1000", "web:1000:1000"])
    root = tmp_path / "c"
    build(root, users=["app:1000:1000"])
    with pytest.raises(UserError, match="uid 1000 of 'web' already belongs to 'app'"):
        build(root, users=["web:1000:1000"])
    build(root, users=["app:1000:1000"])


def test_missing_or_dynamic_busybox(tmp_path):
    with pytest.raises(UserError) as caught:
        build(tmp_path / "a", busybox=str(tmp_path / "no-busybox"))
    assert "busybox not found" in str(caught.value)
    assert "apt-get install busybox-static" in str(caught.value)
    dynamic = shutil.which("ls")
    assert rootfs.elf_interpreter(dynamic)
    with pytest.raises(UserError, match="dynamically linked.*busybox-static"):
        build(tmp_path / "b", busybox=dynamic)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------- check_rootfs


def test_check_rootfs_reports_what_stops_a_jail(tmp_path):
    missing = tmp_path / "nope"
    assert check_rootfs(str(missing)) == [
        f"rootfs {missing} does not exist (hint: build one with nsuwsgi rootfs {missing})"]
    empty = tmp_path / "empty"
    empty.mkdir()
    problems = check_rootfs(str(empty))
    assert problems[0] == (f"rootfs {empty} lacks /proc (hint: create it, or build one "
                           f"with nsuwsgi rootfs {empty})")
    assert any("lacks /dev " in p for p in problems)
    assert any("lacks /bin/sh" in p for p in problems)
    assert not any("/dev/null" in p for p in problems)      # implied by the missing /dev
    assert len(problems) == 3 and all("\n" not in p for p in problems)
    (empty / "dev").mkdir()
    assert any("lacks /dev/null" in p and "mknod" in p for p in check_rootfs(str(empty)))


def test_check_rootfs_follows_symlinks_inside_the_tree(tmp_path):
    root = tmp_path / "jail"
    build(root)
    (root / "bin/sh").unlink()
    os.symlink("/bin/busybox", root / "bin/sh")         # absolute: resolved inside root
    assert check_rootfs(str(root)) == []
    (root / "bin/busybox").rename(root / "bin/busybox.off")
    assert any("lacks /bin/sh" in p for p in check_rootfs(str(root)))
    (root / "bin/sh").unlink()
    (root / "bin/sh").write_text("not a program")
    assert any("not an executable" in p for p in check_rootfs(str(root)))
    (root / "bin/sh").unlink()
    (root / "bin/sh").mkdir()
    assert any("not an executable" in p for p in check_rootfs(str(root)))


def test_check_rootfs_dynamic_shell_needs_its_loader(tmp_path):
    root = tmp_path / "jail"
    build(root)
    (root / "bin/sh").unlink()
    shutil.copy("/bin/dash", root / "bin/sh")
    loader = rootfs.elf_interpreter(str(root / "bin/sh"))
    assert loader
    problems = check_rootfs(str(root))
    assert len(problems) == 1 and f"needs {loader}" in problems[0]
    build(root, usr_from_host=True)          # lib64 -> usr/lib64, /usr bound from the host
    assert check_rootfs(str(root), mounted=jail_mounts("/usr")) == []


def test_check_rootfs_proc_dev_and_null(tmp_path):
    root = tmp_path / "jail"
    build(root)
    (root / "proc").rmdir()
    (root / "proc").write_text("")
    assert any("/proc that is not a directory" in p for p in check_rootfs(str(root)))
    (root / "proc").unlink()
    (root / "proc").mkdir()
    (root / "dev/null").unlink()
    assert any("lacks /dev/null" in p for p in check_rootfs(str(root)))
    assert check_rootfs(str(root), mounted=["/dev"]) == []
    if IS_ROOT:
        os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        assert any("not the null device" in p for p in check_rootfs(str(root)))


@pytest.mark.skipif(not IS_ROOT, reason="needs root for a real /dev/null node")
def test_check_rootfs_nodev_filesystem(tmp_path, monkeypatch):
    root = tmp_path / "jail"
    build(root)
    real = os.statvfs

    class Flags:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_NODEV

    monkeypatch.setattr(os, "statvfs", lambda p: Flags(real(p)))
    assert any("nodev" in p for p in check_rootfs(str(root)))


# ---------------------------------------------------------------- command line


def test_main_builds_and_reports(tmp_path, capsys):
    root = tmp_path / "jail"
    assert rootfs.main([str(root), "--usr-from-host", "--user", "www-data:33:33"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert f"rootfs {root} is ready" in out and "namespace-keep-mount = /usr:/usr:ro" in out
    assert err == "" if IS_ROOT else "placeholder" in err
    assert "www-data:x:33:33" in (root / "etc/passwd").read_text()


@pytest.mark.parametrize("args, expected", [
    (["{dir}"], "not an nsuwsgi rootfs"),
    (["{dir}", "--user", "alice"], "--user: 'alice' is not NAME:UID:GID"),
    (["{new}", "--busybox", "/nonexistent/busybox"], "apt-get install busybox-static"),
    ([], "the following arguments are required: DIR"),
    (["{new}", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_main_errors_are_one_line_exit_2(tmp_path, capsys, args, expected):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "file").write_text("x")
    argv = [a.format(dir=foreign, new=tmp_path / "new") for a in args]
    assert rootfs.main(argv) == EXIT_CONFIG
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert expected in line and out == ""


def test_main_system_error_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rootfs._Builder, "_etc", disk_full)
    assert rootfs.main([str(tmp_path / "jail")]) == 1
    assert "No space left on device" in one_error_line(capsys.readouterr().err)


def test_cli_subprocess_error_exit_2(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "file").write_text("x")
    result = subprocess.run([sys.executable, "-m", "nsuwsgi.rootfs", str(foreign)],
                            capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == EXIT_CONFIG
    line = one_error_line(result.stderr)
    assert line == (f"nsuwsgi: error: rootfs: {foreign} is not empty and is not an nsuwsgi "
                    f"rootfs (it has no etc/nsuwsgi-rootfs.txt) (hint: name a new or empty "
                    f"directory, or pass --force to build over its contents)")
    assert result.stdout == ""


def test_help(capsys):
    assert rootfs.main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for flag in ("--usr-from-host", "--user NAME:UID:GID", "--force", "--busybox"):
        assert flag in out


def test_docs_cover_every_flag():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "rootfs.md").read_text()
    flags = [a for action in rootfs._parser()._actions for a in action.option_strings
             if a.startswith("--") and a != "--help"]
    assert flags and all(f"`{flag}" in docs for flag in flags), flags
    assert rootfs.USR_KEEP_MOUNT in docs
