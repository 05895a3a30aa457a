"""A jail that fails while it is being built says which op failed, on what, and why."""

from __future__ import annotations

from nsuwsgi.rootfs import build_rootfs


def test_a_failed_mount_names_the_op_and_the_paths(nsuwsgi, tmp_path):
    root = tmp_path / "root"
    build_rootfs(str(root))
    (root / "srv").write_text("a file, where a directory is bound")
    source = tmp_path / "data"
    source.mkdir()
    ini = tmp_path / "mount.ini"
    ini.write_text(f"[uwsgi]\nnamespace = {root}\n"
                   f"namespace-keep-mount = {source}:/srv\nattach-daemon = /bin/true\n")
    inst = nsuwsgi("--ini", str(ini))
    assert inst.wait_exit() == 1
    line = next(l for l in inst.log().splitlines() if "cannot start the jail" in l)
    assert f"bind_mount:ENOTDIR:{source}->{root}/srv" in line, line
    assert "mount.ini:2" in line and "hint:" in line


def test_explicit_pivot_root_works_on_a_plain_directory(nsuwsgi, tmp_path):
    """uWSGI needs a hook to make NEW_ROOT a mount point; nsuwsgi binds it in the jail."""
    root = tmp_path / "root"
    build_rootfs(str(root))
    (root / ".old").mkdir()
    ini = tmp_path / "pivot.ini"
    ini.write_text(f"[uwsgi]\npivot_root = {root} {root}/.old\n"
                   "attach-daemon = /bin/sh -c 'ls /.old > /tmp/old-root; exec sleep 60'\n")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    inst.wait_running(0)
    from support import wait_for
    listing = wait_for(lambda: (root / "tmp" / "old-root").exists() and
                       (root / "tmp" / "old-root").read_text(), 10, "the old root's listing")
    assert "proc" in listing.split(), "the old root stays reachable, as uWSGI documents"
    assert inst.stop() == 0
