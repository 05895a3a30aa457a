"""A jail that fails while it is being built says which op failed, on what, and why."""

from __future__ import annotations

from nsuwsgi.rootfs import build_rootfs


def test_a_failed_pivot_root_names_the_op_and_the_path(nsuwsgi, tmp_path):
    root = tmp_path / "root"
    build_rootfs(str(root))
    (root / ".old").mkdir()
    ini = tmp_path / "pivot.ini"
    # uWSGI's explicit pivot_root needs NEW_ROOT to be a mount point; this one is not.
    ini.write_text(f"[uwsgi]\npivot_root = {root} {root}/.old\nattach-daemon = /bin/true\n")
    inst = nsuwsgi("--ini", str(ini))
    code = inst.wait_exit()
    assert code == 1
    line = next(l for l in inst.log().splitlines() if "cannot start the jail" in l)
    assert f"pivot_root:EINVAL:{root} {root}/.old" in line or \
        f"pivot_root:EBUSY:{root} {root}/.old" in line, line
    assert "pivot.ini:2" in line and "hint: pivot_root needs NEW_ROOT to be a mount point" in line
