"""Hook actions: parsing (every action and its errors), ordering, and the file-system actions
run for real in tmp_path. mount, umount and hostname need root and a private namespace: they
are in vm-tests/test_hook_actions.py.

No threads: a file a wait should find is created before the wait starts, and a missing one is
tested with a short `wait_timeout`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

from nsuwsgi import linux
from nsuwsgi.errors import Origin, ValueProblem
from nsuwsgi.jail.hooks import (ACTIONS, FATAL_PHASES, PHASES, UNSUPPORTED, Hook, HookError,
                                MountArgs, UmountArgs, legacy_hook, order_phase, parse_hook,
                                parse_mount_args, parse_umount_args, run_hook, run_phase)
from support import PYTHON, ROOT

SHORT = 0.05        # wait_timeout for waits that must give up


class Log(list):
    """A `log` callable that remembers the lines."""

    def __call__(self, line: str) -> None:
        self.append(line)


def run(text: str, phase: str = "as-root", **kw) -> Log:
    log = Log()
    run_hook(parse_hook(text, phase), log, **kw)
    return log


def problem(text: str, phase: str = "as-root") -> ValueProblem:
    with pytest.raises(ValueProblem) as info:
        parse_hook(text, phase)
    return info.value


def failure(text: str, **kw) -> HookError:
    with pytest.raises(HookError) as info:
        run(text, **kw)
    return info.value


# ---- parsing: every action accepts uWSGI's syntax

VALID = {
    "cd": "/tmp", "chdir": "/tmp", "mkdir": "/run/app", "putenv": "LANG=C.UTF-8",
    "chmod": "/run/app 0755", "chown": "/run/app www-data www-data", "chown2": "/run/app 33 33",
    "sticky": "/tmp/shared", "exec": "touch /run/ready", "safeexec": "false",
    "create": "/run/a", "creat": "/run/a", "write": "/run/a hello world",
    "writen": "/run/a hello", "append": "/run/a more", "appendn": "/run/a",
    "writefifo": "/run/fifo go", "spinningfifo": "/run/fifo go", "unlink": "/run/a",
    "mount": "tmpfs none /mnt nosuid,nodev size=10m,mode=755", "umount": "/mnt rec,detach",
    "hostname": "tenant1", "print": "hello from a hook", "log": "", "exit": "26",
    "wait_for_fs": "/dev/sda", "wait_for_file": "/run/a", "wait_for_dir": "/run",
    "wait_for_socket": "127.0.0.1:8080",
}


def test_the_sample_covers_every_action():
    assert set(VALID) == ACTIONS


@pytest.mark.parametrize("action", sorted(VALID))
def test_every_action_parses(action):
    hook = parse_hook(f"{action}:{VALID[action]}", "in-jail")
    assert (hook.phase, hook.action, hook.arg, hook.private, hook.family) == \
        ("in-jail", action, VALID[action], False, "hook")
    assert hook.describe() == f'running "{action}:{VALID[action]}" (in-jail)...'


def test_the_argument_is_everything_after_the_first_colon():
    hook = parse_hook("exec:echo a:b", "asap")
    assert (hook.action, hook.arg) == ("exec", "echo a:b")


def test_missing_colon_says_action_argument():
    err = problem("mkdir /run/app")
    assert "must be action:argument" in err.message
    assert err.hint


def test_unknown_action_suggests_the_closest():
    err = problem("mkdri:/run/app")
    assert "unknown hook action 'mkdri'" in err.message
    assert err.hint == "did you mean 'mkdir'?"


def test_unknown_action_with_nothing_close_lists_the_actions():
    err = problem("frobnicate:x")
    assert "mkdir" in err.hint and "wait_for_file" in err.hint


@pytest.mark.parametrize("action", sorted(UNSUPPORTED))
def test_actions_needing_uwsgi_internals_are_rejected_with_the_reason(action):
    err = problem(f"{action}:something 1")
    assert f"'{action}'" in err.message
    assert "nsuwsgi" in err.message
    assert "exec" in err.hint


def test_unknown_phase_is_rejected():
    err = problem("mkdir:/x", phase="as-rot")
    assert "as-rot" in err.message and err.hint == "did you mean 'as-root'?"


def test_private_hook_hides_its_argument_in_the_log():
    hook = parse_hook("!exec:curl -u admin:secret http://x", "as-user")
    assert hook.private and hook.action == "exec"
    assert hook.arg == "curl -u admin:secret http://x"
    assert hook.describe() == "running --- PRIVATE HOOK --- (as-user)..."
    assert "secret" not in hook.shown


def test_private_unknown_action_is_still_checked():
    assert "did you mean 'exec'" in problem("!exce:x").hint


def test_hooks_compare_equal_whatever_their_origin():
    a = parse_hook("mkdir:/x", "asap", origin=Origin("a.ini", 3))
    b = parse_hook("mkdir:/x", "asap")
    assert a == b and a.origin.file == "a.ini"


@pytest.mark.parametrize("text, words", [
    ("mkdir:", "path is missing"),
    ("exec:", "command is empty"),
    ("putenv:=x", "putenv:KEY=value"),
    ("chmod:/x", "chmod:<file> <mode>"),
    ("chmod:/x 9", "not an octal mode"),
    ("chmod:/x 75", "not an octal mode"),
    ("chmod:/x 0x1ff", "not an octal mode"),
    ("chmod:/x rwx", "not an octal mode"),
    ("chmod:/x 17777", "not an octal mode"),
    ("chown:/x root", "chown:<file> <user> <group>"),
    ("chown:/x root a b", "chown:<file> <user> <group>"),
    ("chown2:/x www-data 33", "not a numeric uid"),
    ("chown2:/x 33 www-data", "not a numeric gid"),
    ("write:/x", "write:<file> <string>"),
    ("writen:/x", "writen:<file> <string>"),
    ("append:/x", "append:<file> <string>"),
    ("writefifo:/x", "writefifo:<file> <string>"),
    ("hostname:", "not a valid hostname"),
    ("hostname:" + "h" * 65, "not a valid hostname"),
    ("exit:x", "not an exit code"),
    ("exit:256", "not an exit code"),
    ("exit:-1", "not an exit code"),
    ("wait_for_socket:localhost:http", "not a TCP port"),
    ("wait_for_socket:", "address is missing"),
])
def test_bad_arguments_are_rejected_when_read(text, words):
    err = problem(text)
    assert words in err.message
    assert err.message.startswith(text.split(":")[0] + ":")
    assert err.hint


def test_chown2_with_names_points_to_chown():
    assert "use chown for names" in problem("chown2:/x www-data 33").hint


def test_good_modes_and_codes_parse():
    for text in ("chmod:/x 755", "chmod:/x 0640", "chmod:/x 1777", "chown2:/x -1 0",
                 "exit:", "exit:0", "exit:5", "exit:255", "putenv:UNSET_ME",
                 "appendn:/x", "appendn:/x a b", "write:/x ", "wait_for_socket:/run/a.sock",
                 "wait_for_socket:@abstract", "wait_for_socket:[::1]:80"):
        parse_hook(text, "asap")


# ---- mount and umount arguments

def test_mount_fields_flags_and_data():
    args = parse_mount_args("tmpfs tmpfs /mnt/x nosuid,nodev,noexec size=10m,mode=0755 x")
    assert args == MountArgs("tmpfs", "tmpfs", "/mnt/x",
                             linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                             "size=10m,mode=0755 x")


def test_mount_none_fstype_means_no_filesystem_type():
    args = parse_mount_args("none /srv/data /jail/data bind,ro")
    assert args == MountArgs(None, "/srv/data", "/jail/data", linux.MS_BIND | linux.MS_RDONLY,
                             None)


@pytest.mark.parametrize("names, bits", [
    ("bind", linux.MS_BIND), ("dirsync", linux.MS_DIRSYNC), ("mandlock", linux.MS_MANDLOCK),
    ("move", linux.MS_MOVE), ("noatime", linux.MS_NOATIME), ("nodev", linux.MS_NODEV),
    ("noexec", linux.MS_NOEXEC), ("nosuid", linux.MS_NOSUID), ("rdonly", linux.MS_RDONLY),
    ("readonly", linux.MS_RDONLY), ("ro", linux.MS_RDONLY), ("remount", linux.MS_REMOUNT),
    ("sync", linux.MS_SYNCHRONOUS), ("rec", linux.MS_REC), ("recursive", linux.MS_REC),
    ("private", linux.MS_PRIVATE), ("shared", linux.MS_SHARED),
    ("remount,bind,ro", linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY),
    ("rec,private", linux.MS_REC | linux.MS_PRIVATE),
])
def test_mount_flag_names(names, bits):
    assert parse_mount_args(f"none none /x {names}").flags == bits


def test_mount_without_flags():
    assert parse_mount_args("proc proc /jail/proc") == \
        MountArgs("proc", "proc", "/jail/proc", 0, None)


@pytest.mark.parametrize("flag", ["slave", "unbindable", "nosymfollow"])
def test_mount_flags_uwsgi_lacks_are_rejected_listing_the_known_ones(flag):
    err = problem(f"mount:none none /x rec,{flag}")
    assert f"unknown mount flag '{flag}'" in err.message
    assert "bind" in err.message and "shared" in err.message and "nosuid" in err.message


def test_mount_flag_typo_suggests_the_closest():
    assert problem("mount:none /a /b bnid").hint == "did you mean 'bind'?"


def test_umount_flags_are_not_mount_flags():
    err = problem("mount:tmpfs none /x force")
    assert "'force' is a flag of umount" in err.hint
    err = problem("umount:/x ro")
    assert "unknown umount flag 'ro'" in err.message and "detach" in err.message
    assert "'ro' is a flag of mount" in err.hint


@pytest.mark.parametrize("text", ["mount:tmpfs none", "mount:tmpfs", "mount:",
                                  "mount:tmpfs  none /x", "umount:"])
def test_mount_needs_type_source_and_target(text):
    assert "must be" in problem(text).message


def test_umount_arguments():
    assert parse_umount_args("/jail") == UmountArgs("/jail", 0, False)
    assert parse_umount_args("/jail rec,detach") == UmountArgs("/jail", linux.MNT_DETACH, True)
    assert parse_umount_args("/jail recursive,force") == \
        UmountArgs("/jail", linux.MNT_FORCE, True)


# ---- legacy option families

def test_legacy_exec_is_the_exec_action():
    hook = legacy_hook("exec", "touch /run/ready", "as-root")
    assert (hook.action, hook.arg, hook.family, hook.private) == \
        ("exec", "touch /run/ready", "exec", False)
    assert hook.option == "exec-as-root"
    assert hook.describe() == 'running "exec:touch /run/ready" (as-root)...'


def test_legacy_exec_keeps_a_leading_bang_as_shell_text():
    hook = legacy_hook("exec", "! false", "as-root")
    assert not hook.private and hook.arg == "! false"


def test_legacy_mount_and_umount_use_the_same_syntax_without_the_prefix():
    mount = legacy_hook("mount", "tmpfs none /jail/tmp nosuid", "pre-jail")
    assert (mount.action, mount.family, mount.option) == ("mount", "mount", "mount-pre-jail")
    umount = legacy_hook("umount", "/jail/tmp rec", "post-jail")
    assert (umount.action, umount.option) == ("umount", "umount-post-jail")
    with pytest.raises(ValueProblem, match="unknown mount flag 'slave'"):
        legacy_hook("mount", "none / / rec,slave", "pre-jail")


def test_call_options_are_rejected_with_the_reason():
    with pytest.raises(ValueProblem, match="no C symbol table") as info:
        legacy_hook("call", "my_function", "in-jail")
    assert "exec-in-jail" in info.value.hint


def test_unknown_legacy_family():
    with pytest.raises(ValueProblem, match="unknown hook option family"):
        legacy_hook("mkdir", "/x", "in-jail")


# ---- phases and ordering

def test_phases_are_in_the_order_of_a_jails_life():
    assert PHASES[:7] == ("asap", "pre-jail", "post-jail", "in-jail", "as-root", "as-user",
                          "master-start")
    assert {"as-vassal", "as-emperor"} <= set(PHASES)
    assert FATAL_PHASES == set(PHASES) - {"as-emperor"}


def test_within_a_phase_hooks_run_then_mount_umount_exec():
    given = [
        legacy_hook("exec", "echo 1", "in-jail"),
        legacy_hook("umount", "/a", "in-jail"),
        parse_hook("print:first", "in-jail"),
        legacy_hook("mount", "tmpfs none /a", "in-jail"),
        parse_hook("print:second", "in-jail"),
        legacy_hook("exec", "echo 2", "in-jail"),
    ]
    ordered = order_phase(given)
    assert [(h.family, h.arg) for h in ordered] == [
        ("hook", "first"), ("hook", "second"), ("mount", "tmpfs none /a"),
        ("umount", "/a"), ("exec", "echo 1"), ("exec", "echo 2")]
    assert given[0].family == "exec"        # the input is left alone


def test_order_phase_also_orders_phases():
    late = parse_hook("print:late", "as-user")
    early = legacy_hook("exec", "true", "asap")
    assert order_phase([late, early]) == [early, late]


def test_run_phase_runs_only_its_phase_in_order_and_logs_each(tmp_path):
    out = tmp_path / "out"
    hooks = [
        legacy_hook("exec", f"echo exec >> {out}", "in-jail"),
        parse_hook(f"appendn:{out} hook", "in-jail"),
        parse_hook(f"appendn:{out} other-phase", "as-user"),
        parse_hook("!print:secret", "in-jail"),
    ]
    log = Log()
    assert run_phase(hooks, "in-jail", log) == []
    assert out.read_text() == "hook\nexec\n"
    assert log == [f'running "appendn:{out} hook" (in-jail)...',
                   "running --- PRIVATE HOOK --- (in-jail)...", "secret",
                   f'running "exec:echo exec >> {out}" (in-jail)...']


def test_a_fatal_phase_stops_at_the_first_failure(tmp_path):
    hooks = [parse_hook(f"mkdir:{tmp_path}/a/b", "as-root"),
             parse_hook(f"mkdir:{tmp_path}/c", "as-root")]
    with pytest.raises(HookError) as info:
        run_phase(hooks, "as-root", Log())
    assert info.value.hook is hooks[0]
    assert not (tmp_path / "c").exists()


def test_as_emperor_failures_are_logged_and_the_phase_goes_on(tmp_path):
    hooks = [parse_hook(f"mkdir:{tmp_path}/a/b", "as-emperor"),
             parse_hook(f"mkdir:{tmp_path}/c", "as-emperor")]
    log = Log()
    failures = run_phase(hooks, "as-emperor", log)
    assert [f.hook for f in failures] == [hooks[0]]
    assert (tmp_path / "c").is_dir()
    assert any("not fatal" in line for line in log)


# ---- HookError

def test_hook_error_names_option_phase_action_argument_and_os_error(tmp_path):
    err = failure(f"mkdir:{tmp_path}/missing/x")
    text = str(err)
    assert text.startswith(f'hook-as-root "mkdir:{tmp_path}/missing/x" failed: ')
    assert "No such file or directory (ENOENT)" in text
    assert err.hook.action == "mkdir"


def test_hook_error_names_the_file_and_line():
    hook = parse_hook("exec:exit 4", "in-jail", origin=Origin("/etc/app.ini", 12))
    with pytest.raises(HookError) as info:
        run_hook(hook, Log())
    assert str(info.value).startswith('/etc/app.ini:12: hook-in-jail "exec:exit 4" failed')


def test_private_hook_errors_hide_the_argument(tmp_path):
    err = failure(f"!mkdir:{tmp_path}/secret-name/x")
    assert "secret-name" not in str(err)
    assert "!mkdir:" in str(err) and "ENOENT" in str(err)


def test_a_hand_built_hook_with_a_bad_argument_fails_as_a_hook_error():
    with pytest.raises(HookError, match="not an octal mode"):
        run_hook(Hook("as-root", "chmod", "/x 9", False), Log())
    with pytest.raises(HookError, match="unknown hook action"):
        run_hook(Hook("as-root", "nope", "x", False), Log())


# ---- running the file-system actions

def test_mkdir_uses_0777_minus_umask_and_is_not_recursive(tmp_path):
    old = os.umask(0o027)
    try:
        run(f"mkdir:{tmp_path}/d")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert "EEXIST" in str(failure(f"mkdir:{tmp_path}/d"))
    assert "ENOENT" in str(failure(f"mkdir:{tmp_path}/x/y"))


def test_write_truncates_and_adds_no_newline(tmp_path):
    f = tmp_path / "f"
    f.write_text("old content that is long")
    run(f"write:{f} hello world")
    assert f.read_bytes() == b"hello world"
    run(f"writen:{f} again")
    assert f.read_bytes() == b"again\n"


def test_append_and_appendn(tmp_path):
    f = tmp_path / "f"
    run(f"append:{f} a")
    run(f"append:{f} b")
    run(f"appendn:{f} c d")
    run(f"appendn:{f}")
    assert f.read_bytes() == b"abc d\n\n"


def test_create_makes_an_empty_file_and_truncates(tmp_path):
    f = tmp_path / "f"
    run(f"create:{f}")
    assert f.read_bytes() == b""
    f.write_text("x")
    run(f"creat:{f}")
    assert f.read_bytes() == b""


def test_unlink(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    run(f"unlink:{f}")
    assert not f.exists()
    assert "ENOENT" in str(failure(f"unlink:{f}"))


def test_chmod_takes_octal_and_honours_four_digits(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    run(f"chmod:{d} 640")
    assert stat.S_IMODE(d.stat().st_mode) == 0o640
    run(f"chmod:{d} 1750")        # uWSGI would drop the sticky bit
    assert stat.S_IMODE(d.stat().st_mode) == 0o1750


def test_sticky_adds_the_sticky_bit_only(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    d.chmod(0o755)
    run(f"sticky:{d}")
    assert stat.S_IMODE(d.stat().st_mode) == 0o1755


def test_chown_by_name_and_chown2_by_number(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    run(f"chown:{f} {user} {group}")
    run(f"chown2:{f} {os.getuid()} {os.getgid()}")
    run(f"chown2:{f} -1 -1")
    assert (f.stat().st_uid, f.stat().st_gid) == (os.getuid(), os.getgid())


def test_chown_names_are_looked_up_when_the_hook_runs(tmp_path):
    hook = parse_hook(f"chown:{tmp_path} no-such-user-xyz root", "in-jail")   # parses
    with pytest.raises(HookError, match="no user named 'no-such-user-xyz'"):
        run_hook(hook, Log())


def test_chdir_and_cd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)           # restores the cwd after the test
    (tmp_path / "sub").mkdir()
    run(f"chdir:{tmp_path}/sub")
    assert os.getcwd() == str(tmp_path / "sub")
    run("cd:..")
    assert os.getcwd() == str(tmp_path)
    assert "ENOENT" in str(failure("cd:nowhere"))


def test_putenv_sets_and_unsets_and_exec_sees_it(monkeypatch, tmp_path):
    monkeypatch.delenv("NSUWSGI_HOOK_TEST", raising=False)   # restores the env afterwards
    run("putenv:NSUWSGI_HOOK_TEST=a=b c")
    assert os.environ["NSUWSGI_HOOK_TEST"] == "a=b c"
    run(f'exec:printf %s "$NSUWSGI_HOOK_TEST" > {tmp_path}/seen')
    assert (tmp_path / "seen").read_text() == "a=b c"
    run("putenv:NSUWSGI_HOOK_TEST")
    assert "NSUWSGI_HOOK_TEST" not in os.environ


def test_exec_runs_a_shell_command(tmp_path):
    run(f"exec:cd {tmp_path} && echo ok > out")
    assert (tmp_path / "out").read_text() == "ok\n"


def test_exec_failure_reports_the_exit_status():
    err = failure("exec:exit 3")
    assert "exited with status 3" in err.message


def test_exec_killed_by_a_signal_is_a_failure():
    err = failure("exec:kill -9 $$")
    assert "killed by signal 9 (SIGKILL)" in err.message


def test_exec_stdin_is_dev_null(tmp_path):
    run(f"exec:readlink /proc/self/fd/0 > {tmp_path}/stdin")
    assert (tmp_path / "stdin").read_text().strip() == "/dev/null"


def test_safeexec_always_succeeds_and_logs_the_status():
    assert run("safeexec:true") == []
    assert run("safeexec:exit 7") == ["safeexec: the command exited with status 7 (ignored)"]
    log = run("safeexec:kill -TERM $$")
    assert log == ["safeexec: the command was killed by signal 15 (SIGTERM) (ignored)"]


def test_writefifo_without_a_reader_succeeds(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert run(f"writefifo:{fifo} nobody listens") == []


def test_writefifo_with_a_reader_delivers_the_string(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        run(f"writefifo:{fifo} go now")
        assert os.read(reader, 100) == b"go now"
    finally:
        os.close(reader)


def test_writefifo_on_a_missing_path_fails(tmp_path):
    assert "ENOENT" in str(failure(f"writefifo:{tmp_path}/none x"))


def test_spinningfifo_writes_once_a_reader_exists_and_gives_up_without(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    err = failure(f"spinningfifo:{fifo} x", wait_timeout=SHORT)
    assert "gave up waiting for a reader" in err.message
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        run(f"spinningfifo:{fifo} hello", wait_timeout=SHORT)
        assert os.read(reader, 100) == b"hello"
    finally:
        os.close(reader)


def test_wait_for_file_dir_and_fs_find_what_exists(tmp_path):
    (tmp_path / "file").write_text("")
    run(f"wait_for_file:{tmp_path}/file", wait_timeout=SHORT)
    run(f"wait_for_dir:{tmp_path}", wait_timeout=SHORT)
    run(f"wait_for_fs:{tmp_path}/file", wait_timeout=SHORT)
    run(f"wait_for_fs:{tmp_path}", wait_timeout=SHORT)


def test_waits_give_up_on_a_missing_or_wrong_kind_of_object(tmp_path):
    err = failure(f"wait_for_file:{tmp_path}/never", wait_timeout=SHORT)
    assert f"gave up waiting for the file {tmp_path}/never after 0.05s" in err.message
    assert "gave up" in failure(f"wait_for_file:{tmp_path}", wait_timeout=SHORT).message
    (tmp_path / "file").write_text("")
    assert "gave up" in failure(f"wait_for_dir:{tmp_path}/file", wait_timeout=SHORT).message
    assert "gave up" in failure(f"wait_for_fs:{tmp_path}/x", wait_timeout=SHORT).message


def test_wait_for_socket_tcp():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        run(f"wait_for_socket:127.0.0.1:{port}", wait_timeout=SHORT)
    err = failure(f"wait_for_socket:127.0.0.1:{port}", wait_timeout=SHORT)
    assert "gave up waiting for the socket" in err.message


def test_wait_for_socket_unix():
    sockdir = tempfile.mkdtemp(prefix="nsuhk", dir="/tmp")     # short: sun_path is 108 bytes
    try:
        path = os.path.join(sockdir, "s")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            server.listen()
            run(f"wait_for_socket:{path}", wait_timeout=SHORT)
        assert "gave up" in failure(f"wait_for_socket:{path}", wait_timeout=SHORT).message
    finally:
        shutil.rmtree(sockdir)


def test_print_and_log_write_the_text_to_the_log():
    assert run("print:hello: world") == ["hello: world"]
    assert run("log:") == [""]


EXIT_CODE = """
import sys
from nsuwsgi.jail.hooks import parse_hook, run_hook
print("flushed before exit", end="")
run_hook(parse_hook(sys.argv[1], "as-user"), print)
print("not reached")
"""


@pytest.mark.parametrize("text, code", [("exit:5", 5), ("exit:26", 26), ("exit:", 0),
                                        ("exit:0", 0)])
def test_exit_ends_the_process_with_the_code(text, code):
    done = subprocess.run([PYTHON, "-c", EXIT_CODE, text], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert done.returncode == code, done.stderr
    assert done.stdout == "flushed before exit"
