"""The Emperor's monitor against real files and real inotify: what exists, what changed."""

from __future__ import annotations

import os
import select

import pytest

from nsuwsgi.emperor.monitor import (Changes, Monitor, Pattern, VassalFile, diff,
                                     parse_pattern, scan)

CONFIG = "[uwsgi]\nmodule = app\n"


def write(path, text=CONFIG) -> None:
    with open(path, "w") as f:
        f.write(text)


def readable(monitor: Monitor, timeout: float = 5.0) -> bool:
    return bool(select.select([monitor], [], [], timeout)[0])


def event(monitor: Monitor) -> bool:
    """Wait (bounded) for the inotify fd, then dispatch: True if the change is relevant."""
    assert readable(monitor), "no inotify event within 5 s"
    return monitor.dispatch()


def drain(monitor: Monitor) -> None:
    while readable(monitor, 0):
        monitor.dispatch()


def link(target, path) -> None:
    """Point symlink `path` at `target` atomically, as `ln -sfn` does."""
    tmp = f"{path}.tmp-link"
    os.symlink(target, tmp)
    os.replace(tmp, path)


@pytest.fixture
def vassals(tmp_path):
    directory = tmp_path / "vassals"
    directory.mkdir()
    return directory


@pytest.fixture
def monitor(vassals):
    with Monitor([str(vassals)]) as m:
        assert not m.rescan()
        yield m


# ---- scanning and diffing

def test_first_rescan_reports_existing_vassals_as_added(vassals):
    write(vassals / "a.ini")
    write(vassals / "b.yml")
    with Monitor([str(vassals)]) as m:
        assert m.rescan() == Changes(added=["a.ini", "b.yml"])
        assert not m.rescan()
        record = m.vassals["a.ini"]
    assert record.path == str(vassals / "a.ini")
    assert (record.uid, record.gid) == (os.getuid(), os.getgid())
    assert record.target is None


def test_add_is_seen_through_the_fd(monitor, vassals):
    write(vassals / "a.ini")
    assert event(monitor)
    assert monitor.rescan() == Changes(added=["a.ini"])


def test_two_same_size_writes_in_one_second_are_two_changes(monitor, vassals):
    path = vassals / "a.ini"
    second = 1_700_000_000 * 10**9      # pin mtime to one whole second: uWSGI sees no change
    write(path, "aaaa")
    os.utime(path, ns=(second, second))
    assert monitor.rescan().added == ["a.ini"]
    for text in ("bbbb", "cccc"):
        write(path, text)
        os.utime(path, ns=(second, second))
        assert event(monitor)
        assert monitor.rescan() == Changes(changed=["a.ini"])
    assert os.stat(path).st_mtime_ns == second


def test_plain_rewrites_in_quick_succession_are_changes(monitor, vassals):
    write(vassals / "a.ini", "1111")
    assert monitor.rescan().added == ["a.ini"]
    write(vassals / "a.ini", "2222")
    assert monitor.rescan().changed == ["a.ini"]
    write(vassals / "a.ini", "3333")
    assert monitor.rescan().changed == ["a.ini"]


def test_delete(monitor, vassals):
    write(vassals / "a.ini")
    assert monitor.rescan().added == ["a.ini"]
    drain(monitor)
    os.unlink(vassals / "a.ini")
    assert event(monitor)
    assert monitor.rescan() == Changes(removed=["a.ini"])


def test_rename_into_the_directory(monitor, vassals, tmp_path):
    write(tmp_path / "a.ini")
    drain(monitor)
    os.rename(tmp_path / "a.ini", vassals / "a.ini")       # MOVED_TO only
    assert event(monitor)
    assert monitor.rescan() == Changes(added=["a.ini"])


def test_rename_out_of_the_directory(monitor, vassals, tmp_path):
    write(vassals / "a.ini")
    assert monitor.rescan().added == ["a.ini"]
    drain(monitor)
    os.rename(vassals / "a.ini", tmp_path / "a.ini")       # MOVED_FROM only
    assert event(monitor)
    assert monitor.rescan() == Changes(removed=["a.ini"])


def test_atomic_rename_over_is_a_change_even_with_same_mtime_and_size(monitor, vassals):
    path = vassals / "x.ini"
    write(path)
    assert monitor.rescan().added == ["x.ini"]
    drain(monitor)
    old = os.stat(path)
    tmp = vassals / ".x.ini.tmp"
    write(tmp)
    os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tmp, path)
    assert event(monitor)
    assert monitor.rescan() == Changes(changed=["x.ini"])


# ---- symlinks

@pytest.fixture
def conf(tmp_path):
    """A directory outside the vassal directory holding symlink targets."""
    directory = tmp_path / "conf"
    directory.mkdir()
    write(directory / "app.conf", "[uwsgi]\nmodule = one\n")
    write(directory / "other.conf", "[uwsgi]\nmodule = two\n")
    return directory


def test_symlink_added(monitor, vassals, conf):
    os.symlink(conf / "app.conf", vassals / "app.ini")
    assert event(monitor)
    assert monitor.rescan() == Changes(added=["app.ini"])
    record = monitor.vassals["app.ini"]
    assert record.path == str(vassals / "app.ini")
    assert record.target == str(conf / "app.conf")
    assert str(conf / "app.conf") in record.identity


def test_symlink_target_edited_outside_the_vassal_dir(monitor, vassals, conf):
    os.symlink(conf / "app.conf", vassals / "app.ini")
    assert monitor.rescan().added == ["app.ini"]
    drain(monitor)
    write(conf / "app.conf", "[uwsgi]\nmodule = ONE\n")     # same size, only the target
    assert event(monitor)
    assert monitor.rescan() == Changes(changed=["app.ini"])


def test_unrelated_file_next_to_a_target_is_not_relevant(monitor, vassals, conf):
    os.symlink(conf / "app.conf", vassals / "app.ini")
    assert monitor.rescan().added == ["app.ini"]
    drain(monitor)
    write(conf / "notes.txt", "hello")
    assert not event(monitor)


def test_symlink_retargeted(monitor, vassals, conf):
    os.symlink(conf / "app.conf", vassals / "app.ini")
    assert monitor.rescan().added == ["app.ini"]
    drain(monitor)
    old = os.stat(conf / "app.conf")
    os.utime(conf / "other.conf", ns=(0, old.st_mtime_ns - 10**9))   # older: uWSGI misses it
    link(conf / "other.conf", vassals / "app.ini")
    assert event(monitor)
    assert monitor.rescan() == Changes(changed=["app.ini"])
    assert monitor.vassals["app.ini"].target == str(conf / "other.conf")


def test_retargeted_symlink_follows_edits_of_its_new_target(monitor, vassals, tmp_path, conf):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(elsewhere / "new.conf")
    os.symlink(conf / "app.conf", vassals / "app.ini")
    assert monitor.rescan().added == ["app.ini"]
    link(elsewhere / "new.conf", vassals / "app.ini")
    assert monitor.rescan().changed == ["app.ini"]
    drain(monitor)
    write(elsewhere / "new.conf", "[uwsgi]\nmodule = new\n")
    assert event(monitor)
    assert monitor.rescan() == Changes(changed=["app.ini"])


def test_dangling_symlink_is_absent(monitor, vassals, conf):
    os.symlink(conf / "missing.conf", vassals / "app.ini")
    assert not monitor.rescan()
    write(conf / "missing.conf")
    assert monitor.rescan() == Changes(added=["app.ini"])
    os.unlink(conf / "missing.conf")
    assert monitor.rescan() == Changes(removed=["app.ini"])


# ---- what counts as a vassal file

def test_only_vassal_extensions_count(vassals):
    for name in ("a.ini", "b.json", "c.yaml", "d.yml"):
        write(vassals / name)
    for name in ("e.txt", "f.xml", "g.ini~", ".h.ini", ".a.ini.swp", "a.ini.bak", "i.INI"):
        write(vassals / name)
    (vassals / "sub.ini").mkdir()
    write(vassals / "sub.ini" / "deep.ini")
    found, warnings = scan([str(vassals)])
    assert sorted(found) == ["a.ini", "b.json", "c.yaml", "d.yml"]
    assert warnings == []


def test_editor_temp_files_do_not_trigger_a_rescan(monitor, vassals):
    write(vassals / ".a.ini.swp")
    assert not event(monitor)
    write(vassals / "a.ini~")
    assert not event(monitor)
    assert not monitor.rescan()


# ---- patterns

def test_glob_pattern(tmp_path, vassals):
    write(vassals / "a.ini")
    write(vassals / "b.yml")
    write(vassals / "c.txt")
    with Monitor([str(vassals / "*.ini")]) as m:
        assert m.patterns == [Pattern("glob", str(vassals / "*.ini"))]
        assert m.rescan() == Changes(added=["a.ini"])
        write(vassals / "d.ini")
        assert event(m)
        assert m.rescan() == Changes(added=["d.ini"])


def test_glob_with_a_wildcard_directory_part(tmp_path):
    for app in ("one", "two"):
        (tmp_path / app).mkdir()
        write(tmp_path / app / f"{app}.ini")
    with Monitor([str(tmp_path / "*" / "*.ini")]) as m:
        assert m.rescan() == Changes(added=["one.ini", "two.ini"])
        write(tmp_path / "two" / "two.ini", "[uwsgi]\nmodule = changed\n")
        assert event(m)
        assert m.rescan() == Changes(changed=["two.ini"])


def test_same_basename_in_two_patterns_first_wins(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write(first / "a.ini")
    write(second / "a.ini")
    found, warnings = scan([str(first), str(second)])
    assert found["a.ini"].path == str(first / "a.ini")
    assert len(warnings) == 1 and str(second / "a.ini") in warnings[0]
    with Monitor([str(first), str(second)]) as m:
        assert m.rescan() == Changes(added=["a.ini"])
        os.unlink(first / "a.ini")          # the second one takes over: a different file
        assert m.rescan() == Changes(changed=["a.ini"])
        assert m.vassals["a.ini"].path == str(second / "a.ini")


def test_parse_pattern(tmp_path, vassals):
    assert parse_pattern(str(vassals)) == Pattern("dir", str(vassals))
    assert parse_pattern(str(tmp_path / "vass*")) == Pattern("dir", str(vassals))
    assert parse_pattern(str(vassals / "*.ini")) == Pattern("glob", str(vassals / "*.ini"))
    assert parse_pattern(f"dir://{vassals}") == Pattern("dir", str(vassals))
    assert parse_pattern(f"glob://{vassals}") == Pattern("glob", str(vassals))
    missing = str(tmp_path / "missing")
    assert parse_pattern(missing) == Pattern("glob", missing)
    with pytest.raises(ValueError, match="pg://"):
        parse_pattern("pg://dbname=vassals")


def test_missing_path_governs_nothing_with_a_warning(tmp_path):
    missing = str(tmp_path / "missing")
    found, warnings = scan([missing])
    assert found == {}
    assert warnings == [f"vassal pattern {missing}: no such file or directory"]


def test_unreadable_directory_gives_a_warning(vassals):
    if os.geteuid() == 0:
        pytest.skip("root reads any directory")
    write(vassals / "a.ini")
    os.chmod(vassals, 0)
    try:
        found, warnings = scan([str(vassals)])
    finally:
        os.chmod(vassals, 0o755)
    assert found == {}
    assert len(warnings) == 1 and str(vassals) in warnings[0]


def test_vassal_directory_removed_and_recreated(monitor, vassals):
    write(vassals / "a.ini")
    assert monitor.rescan().added == ["a.ini"]
    drain(monitor)
    os.unlink(vassals / "a.ini")
    vassals.rmdir()
    assert event(monitor)
    assert monitor.rescan() == Changes(removed=["a.ini"])
    assert "cannot read vassal directory" in monitor.warnings[0]
    vassals.mkdir()
    assert not monitor.rescan()          # watches the new directory
    assert monitor.warnings == []
    write(vassals / "b.ini")
    assert event(monitor)
    assert monitor.rescan() == Changes(added=["b.ini"])


# ---- diff and the fd

def test_diff():
    def record(name, identity, path=None):
        return VassalFile(name, path or f"/v/{name}", identity, 0, 0)
    old = {"a.ini": record("a.ini", (1,)), "b.ini": record("b.ini", (2,)),
           "c.ini": record("c.ini", (3,)), "d.ini": record("d.ini", (4,))}
    new = {"a.ini": record("a.ini", (1,)), "b.ini": record("b.ini", (20,)),
           "d.ini": record("d.ini", (4,), "/w/d.ini"), "e.ini": record("e.ini", (5,))}
    assert diff(old, new) == Changes(added=["e.ini"], changed=["b.ini", "d.ini"],
                                     removed=["c.ini"])
    assert not diff(new, new)


def test_fd_is_quiet_until_something_happens(monitor, vassals):
    assert not readable(monitor, 0)
    write(vassals / "a.ini")
    assert readable(monitor)
    assert monitor.dispatch()


def test_close_closes_the_fd(vassals):
    m = Monitor([str(vassals)])
    m.rescan()
    fd = m.fileno()
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    m.close()
    assert m.inotify.closed
    with pytest.raises(OSError):
        os.fstat(fd)
