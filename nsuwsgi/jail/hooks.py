"""uWSGI's hook actions (`hook-<phase> = action:arg` and the legacy `exec-`, `mount-`,
`umount-<phase>` options), checked when the configuration is read instead of when they run.

Why this module exists
----------------------
uWSGI looks an action up, and splits its argument, only when the phase runs: a typo in
`hook-post-jail` is found after the namespaces exist, half-way through building the jail, and
the instance dies there. nsuwsgi parses every hook when the option is read: the `action:arg`
syntax, the action name (with a did-you-mean), and the argument wherever it can be checked
without touching the system (mount/umount flag names, field counts, octal modes, numeric ids,
exit codes). What cannot be known in advance (does the user exist inside the jail, is the path
there) is checked when the hook runs; a failure is a HookError that names the option, the
phase, the action, the argument and the OS error.

The syntax is uWSGI's, exactly (reference/uwsgi-semantics.md 2.8 and 2.9): the action ends at
the first `:`, a leading `!` makes a hook private, argument fields are separated by single
spaces and the last field is the rest of the line. Existing configurations move over unchanged.

Deliberate differences from uWSGI
---------------------------------
- Bad hooks are rejected when the option is read (uWSGI notices when the phase runs).
- `exec` fails when the shell is killed by a signal. uWSGI returns WEXITSTATUS() of the wait
  status, which is 0 for a signal death, so a crashed command counted as success.
- `exit:5` exits with 5. uWSGI ignores one-character arguments (`exit:5` exits 0, `exit:26`
  exits 26). A code that is not a number from 0 to 255 is rejected.
- `chmod` honours a 4-digit mode: `1777` sets the sticky bit; uWSGI keeps only the last three
  digits. As in uWSGI the mode is octal with at least 3 digits.
- Mount and umount flags are checked per call. uWSGI uses one table for both, so `force` or
  `detach` in a mount became MS_RDONLY or MS_NOSUID (the same bits); here they are umount-only,
  and umount accepts only `rec`/`recursive`, `detach` and `force`. There is still no `slave`
  or `unbindable` (uWSGI has neither).
- Waits are bounded and quick: `wait_for_fs/file/dir/socket` poll every 10 ms for up to 60 s
  (uWSGI: every second); `spinningfifo` gives up after the same 60 s (uWSGI spins forever).
- `exec` runs through the spawn primitive: stdin is /dev/null and no fd other than 0-2 is
  inherited (uWSGI closes only its sockets).
- `call`, `callret`, `callint`, `callintret`, `unix_signal` (a C symbol table), `rpc`,
  `retryrpc` and `alarm` (uWSGI subsystems) and the `call-<phase>` options are rejected with a
  message saying why, instead of being accepted and failing later.
- A private hook (`!action:arg`) hides its argument in HookError too, not only in the
  "running ..." line (the action name stays, paths are left out). No error message, private
  or not, quotes a written string; exec failures give the status, not the command again.

`exit` ends the process at once (os._exit after flushing stdout and stderr): no atexit
handlers, no finally blocks, no cleanup. Use it only in a phase of a process whose end is the
intent. `exec` counts anything but exit status 0 as a failure; `safeexec` only logs it.
`umount:<dir> rec` unmounts every mount below <dir>, newest first, then <dir> itself.

A read-only bind mount needs two hooks, as with mount(8) and uWSGI: the kernel ignores every
flag but `rec` on the first `bind`, so write `mount:none SRC DST bind` and then
`mount:none none DST remount,bind,ro`.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable

from nsuwsgi import linux
from nsuwsgi.linux import syscalls
from nsuwsgi.errors import COMMAND_LINE, Origin, ValueProblem, did_you_mean
from nsuwsgi.records import Frozen, set_field
from nsuwsgi import spawn as spawn_primitive   # a module import: spawn imports us too
from nsuwsgi.spec import ProcessSpec

Log = Callable[[str], None]

# The phases nsuwsgi runs hooks in, in the order of a jail's life (uWSGI's order, 2.1).
PHASES = ("asap", "pre-jail", "post-jail", "in-jail", "as-root", "as-user", "master-start",
          "as-vassal", "as-emperor")

# A failing hook stops the instance in these phases; in the others it is logged and skipped.
FATAL_PHASES = frozenset(PHASES) - {"as-emperor"}

# Which option declared a hook. Within one phase uWSGI runs them in this order.
HOOK, MOUNT, UMOUNT, EXEC = "hook", "mount", "umount", "exec"
FAMILIES = (HOOK, MOUNT, UMOUNT, EXEC)
LEGACY_FAMILIES = (MOUNT, UMOUNT, EXEC)

WAIT_TIMEOUT = 60.0     # seconds a wait_for_* or spinningfifo hook waits before failing
POLL_INTERVAL = 0.01    # seconds between two checks of a wait
SHELL = "/bin/sh"
PRIVATE_TEXT = "--- PRIVATE HOOK ---"


# ---- the hook record

class Hook(Frozen):
    """One hook, as the user wrote it, already validated by parse_hook or legacy_hook.

    A records.Frozen class like the option table's records (the table calls .replace on it).
    """

    __slots__ = ("phase", "action", "arg", "private", "origin", "family")
    _not_compared = ("origin",)

    def __init__(self, phase: str, action: str, arg: str, private: bool = False,
                 origin: Origin = COMMAND_LINE, family: str = HOOK):
        set_field(self, "phase", phase)
        set_field(self, "action", action)
        set_field(self, "arg", arg)
        set_field(self, "private", private)
        set_field(self, "origin", origin)
        set_field(self, "family", family)   # the family that declared it: hook, mount, exec...

    @property
    def option(self) -> str:
        """The option name that declared the hook, e.g. `hook-as-root` or `exec-in-jail`."""
        return f"{self.family}-{self.phase}"

    @property
    def shown(self) -> str:
        """`action:arg` for messages, with the argument hidden when the hook is private."""
        if self.private:
            return f"!{self.action}:{PRIVATE_TEXT}"
        return f"{self.action}:{self.arg}"

    def describe(self) -> str:
        """The log line written before the hook runs (uWSGI's wording)."""
        if self.private:
            return f"running {PRIVATE_TEXT} ({self.phase})..."
        return f'running "{self.action}:{self.arg}" ({self.phase})...'


class HookError(Exception):
    """A hook failed while running. str() names the option, the hook and the reason."""

    def __init__(self, hook: Hook, message: str):
        super().__init__(hook, message)
        self.hook = hook
        self.message = message

    def __str__(self) -> str:
        where = f"{self.hook.origin}: " if self.hook.origin.file else ""
        return f'{where}{self.hook.option} "{self.hook.shown}" failed: {self.message}'


class _Failed(Exception):
    """Raised by an action runner for a failure that is not an OSError."""


class _Context(Frozen):
    """What a running action may use besides its own arguments."""

    __slots__ = ("log", "wait_timeout")

    def __init__(self, log: Log, wait_timeout: float):
        set_field(self, "log", log)
        set_field(self, "wait_timeout", wait_timeout)


class _Action(Frozen):
    __slots__ = ("parse", "run", "usage")

    def __init__(self, parse: Callable[[str], object], run: Callable[[object, _Context], None],
                 usage: str):
        set_field(self, "parse", parse)     # arg -> typed arguments, or ValueProblem
        set_field(self, "run", run)         # performs it; raises OSError or _Failed
        set_field(self, "usage", usage)


class MountArgs(Frozen):
    __slots__ = ("fstype", "source", "target", "flags", "data")

    def __init__(self, fstype: str | None, source: str, target: str, flags: int,
                 data: str | None):
        # fstype is None for `none` (bind, move, remount, propagation changes)
        set_field(self, "fstype", fstype)
        set_field(self, "source", source)
        set_field(self, "target", target)
        set_field(self, "flags", flags)
        set_field(self, "data", data)


class UmountArgs(Frozen):
    __slots__ = ("target", "flags", "recursive")

    def __init__(self, target: str, flags: int, recursive: bool):
        set_field(self, "target", target)
        set_field(self, "flags", flags)             # MNT_DETACH / MNT_FORCE
        set_field(self, "recursive", recursive)     # `rec`: unmount everything under target first


# ---- argument parsers (pure; shared by parse time and run time)

def _fields(arg: str, count: int, usage: str, optional: int = 0) -> list[str]:
    """Split on single spaces into `count` fields, the last being the rest of the line.

    The last `optional` fields may be missing; present fields must not be empty.
    """
    parts = arg.split(" ", count - 1)
    if len(parts) < count - optional or any(p == "" for p in parts[:count - 1]):
        raise ValueProblem(f"'{arg}' must be {usage}",
                           "separate the fields with single spaces")
    return parts


def _parse_path(usage: str) -> Callable[[str], str]:
    def parse(arg: str) -> str:
        if not arg:
            raise ValueProblem(f"a path is missing: must be {usage}")
        return arg
    return parse


def _parse_text(arg: str) -> str:
    return arg


def _parse_command(arg: str) -> str:
    if not arg.strip():
        raise ValueProblem("the command is empty", "write exec:<shell command>")
    return arg


def _parse_putenv(arg: str) -> tuple[str, str | None]:
    """`KEY=value` sets; a bare `KEY` unsets (glibc putenv semantics, as in uWSGI)."""
    key, sep, value = arg.partition("=")
    if not key:
        raise ValueProblem(f"'{arg}' must be putenv:KEY=value", "name the variable before '='")
    return key, (value if sep else None)


def _parse_mode(text: str) -> int:
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise ValueProblem(f"'{text}' is not an octal mode",
                           "write 3 or 4 octal digits, e.g. 755 or 1777")
    return int(text, 8)


def _parse_chmod(arg: str) -> tuple[str, int]:
    path, mode = _fields(arg, 2, "chmod:<file> <mode>")
    return path, _parse_mode(mode)


def _parse_chown(arg: str) -> tuple[str, str, str]:
    """Names are resolved when the hook runs: the jail may have its own /etc/passwd."""
    path, user, group = _fields(arg, 3, "chown:<file> <user> <group>")
    if " " in group:
        raise ValueProblem(f"'{arg}' must be chown:<file> <user> <group>", "give one group")
    return path, user, group


def _parse_id(text: str, what: str) -> int:
    if not re.fullmatch(r"-1|[0-9]+", text):
        raise ValueProblem(f"'{text}' is not a numeric {what}",
                           "chown2 takes numbers (-1 keeps the current one); "
                           "use chown for names")
    return int(text)


def _parse_chown2(arg: str) -> tuple[str, int, int]:
    path, uid, gid = _fields(arg, 3, "chown2:<file> <uid> <gid>")
    return path, _parse_id(uid, "uid"), _parse_id(gid, "gid")


def _parse_file_text(action: str) -> Callable[[str], tuple[str, str]]:
    def parse(arg: str) -> tuple[str, str]:
        path, text = _fields(arg, 2, f"{action}:<file> <string>")
        return path, text
    return parse


def _parse_appendn(arg: str) -> tuple[str, str]:
    path, *text = _fields(arg, 2, "appendn:<file> [<string>]", optional=1)
    return path, (text[0] if text else "")


MOUNT_FLAGS = {
    "bind": linux.MS_BIND,
    "dirsync": linux.MS_DIRSYNC,
    "mandlock": linux.MS_MANDLOCK,
    "move": linux.MS_MOVE,
    "noatime": linux.MS_NOATIME,
    "nodev": linux.MS_NODEV,
    "noexec": linux.MS_NOEXEC,
    "nosuid": linux.MS_NOSUID,
    "rdonly": linux.MS_RDONLY,
    "readonly": linux.MS_RDONLY,
    "ro": linux.MS_RDONLY,
    "remount": linux.MS_REMOUNT,
    "sync": linux.MS_SYNCHRONOUS,
    "rec": linux.MS_REC,
    "recursive": linux.MS_REC,
    "private": linux.MS_PRIVATE,
    "shared": linux.MS_SHARED,
}
UMOUNT_FLAGS = {
    "detach": linux.MNT_DETACH,
    "force": linux.MNT_FORCE,
    "rec": 0,               # handled by UmountArgs.recursive
    "recursive": 0,
}


def _parse_flags(text: str, table: dict[str, int], call: str) -> int:
    """`bind,ro` -> the OR of the bits; an unknown name lists the known ones."""
    bits = 0
    for name in filter(None, text.split(",")):
        if name not in table:
            known = ", ".join(sorted(table))
            raise ValueProblem(f"unknown {call} flag '{name}' (known: {known})",
                               _flag_hint(name, table, call))
        bits |= table[name]
    return bits


def _flag_hint(name: str, table: dict[str, int], call: str) -> str:
    other = "umount" if call == "mount" else "mount"
    if name in (UMOUNT_FLAGS if call == "mount" else MOUNT_FLAGS):
        return f"'{name}' is a flag of {other}, not of {call}"
    return did_you_mean(name, table) or "flags are a comma-separated list, e.g. bind,ro"


def parse_mount_args(arg: str) -> MountArgs:
    """`<fstype> <source> <target> [<flags> [<data>]]` -> MountArgs, or ValueProblem."""
    usage = "mount:<fstype> <source> <target> [<flags> [<data>]]"
    fstype, source, target, *rest = _fields(arg, 5, usage, optional=2)
    flags = _parse_flags(rest[0], MOUNT_FLAGS, "mount") if rest else 0
    data = rest[1] if len(rest) == 2 else None
    return MountArgs(None if fstype == "none" else fstype, source, target, flags, data)


def parse_umount_args(arg: str) -> UmountArgs:
    """`<target> [<flags>]` -> UmountArgs, or ValueProblem."""
    target, *rest = _fields(arg, 2, "umount:<target> [<flags>]", optional=1)
    names = set(rest[0].split(",")) if rest else set()
    flags = _parse_flags(rest[0], UMOUNT_FLAGS, "umount") if rest else 0
    return UmountArgs(target, flags, bool(names & {"rec", "recursive"}))


def _parse_hostname(arg: str) -> str:
    if not arg or len(arg.encode()) > 64:
        raise ValueProblem(f"'{arg}' is not a valid hostname", "use 1 to 64 characters")
    return arg


def _parse_exit(arg: str) -> int:
    if arg == "":
        return 0
    if not arg.isdigit() or int(arg) > 255:
        raise ValueProblem(f"'{arg}' is not an exit code", "use a number from 0 to 255")
    return int(arg)


def _parse_socket(arg: str) -> tuple[int, object]:
    """`/path` or `@abstract` (unix) or `host:port` (TCP) -> (family, address)."""
    if not arg:
        raise ValueProblem("the address is missing", "write wait_for_socket:/path or host:port")
    if arg.startswith("@"):
        return socket.AF_UNIX, "\0" + arg[1:]
    host, sep, port = arg.rpartition(":")
    if "/" in arg or not sep:
        return socket.AF_UNIX, arg
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueProblem(f"'{port}' is not a TCP port", "write host:port, e.g. 127.0.0.1:8080")
    return socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]") or "0.0.0.0",
                                                               int(port))


# ---- action runners

def _os_environment() -> tuple[str, ...]:
    return tuple(f"{key}={value}" for key, value in os.environ.items())


def _run_shell(command: str) -> tuple[str, int]:
    """Run `/bin/sh -c command` to completion: ("exited", code) or ("killed", signal)."""
    spec = ProcessSpec(argv=(SHELL, "-c", command), executable=SHELL,
                       env=_os_environment(), new_session=False)
    try:
        child = spawn_primitive.spawn(spec, time.monotonic())
    except spawn_primitive.SpawnError as exc:
        raise _Failed(exc.describe()) from None
    try:
        result = os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
    except ChildProcessError:
        raise _Failed("the shell was reaped by someone else; its status is unknown") from None
    finally:
        os.close(child.pidfd)
    if result.si_code == os.CLD_EXITED:
        return "exited", result.si_status
    return "killed", result.si_status


def _shell_outcome(kind: str, number: int) -> str:
    if kind == "exited":
        return f"exited with status {number}"
    return f"was killed by signal {number} ({_signal_name(number)})"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _run_exec(command: str, ctx: _Context) -> None:
    kind, number = _run_shell(command)
    if (kind, number) != ("exited", 0):
        raise _Failed(f"the command {_shell_outcome(kind, number)}")


def _run_safeexec(command: str, ctx: _Context) -> None:
    kind, number = _run_shell(command)
    if (kind, number) != ("exited", 0):
        ctx.log(f"safeexec: the command {_shell_outcome(kind, number)} (ignored)")


def _run_chdir(path: str, ctx: _Context) -> None:
    os.chdir(path)


def _run_mkdir(path: str, ctx: _Context) -> None:
    os.mkdir(path, 0o777)


def _run_putenv(args: tuple[str, str | None], ctx: _Context) -> None:
    key, value = args
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _run_chmod(args: tuple[str, int], ctx: _Context) -> None:
    path, mode = args
    os.chmod(path, mode)


def _run_chown(args: tuple[str, str, str], ctx: _Context) -> None:
    path, user, group = args
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise _Failed(f"no user named '{user}'") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise _Failed(f"no group named '{group}'") from None
    os.chown(path, uid, gid)


def _run_chown2(args: tuple[str, int, int], ctx: _Context) -> None:
    path, uid, gid = args
    os.chown(path, uid, gid)


def _run_sticky(path: str, ctx: _Context) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, mode | stat.S_ISVTX)


def _write_file(path: str, data: bytes, flags: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | flags, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _run_create(path: str, ctx: _Context) -> None:
    _write_file(path, b"", os.O_TRUNC)


def _writer(flags: int, newline: bool) -> Callable[[tuple[str, str], _Context], None]:
    def run(args: tuple[str, str], ctx: _Context) -> None:
        path, text = args
        _write_file(path, os.fsencode(text) + (b"\n" if newline else b""), flags)
    return run


def _open_fifo(path: str) -> int | None:
    """The fifo opened for writing without blocking, or None when nobody is reading."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            return None
        raise


def _write_fifo(fd: int, text: str) -> None:
    """Write without blocking: a reader that never reads must not hang the instance."""
    try:
        _write_all(fd, os.fsencode(text))
    finally:
        os.close(fd)


def _run_writefifo(args: tuple[str, str], ctx: _Context) -> None:
    path, text = args
    fd = _open_fifo(path)
    if fd is not None:          # no reader counts as success, as in uWSGI
        _write_fifo(fd, text)


def _run_spinningfifo(args: tuple[str, str], ctx: _Context) -> None:
    path, text = args
    fd = _wait_until(lambda: _open_fifo(path), f"a reader on the fifo {path}", ctx.wait_timeout)
    _write_fifo(fd, text)


def _run_unlink(path: str, ctx: _Context) -> None:
    os.unlink(path)


def _run_mount(args: MountArgs, ctx: _Context) -> None:
    syscalls.mount(args.source, args.target, args.fstype, args.flags, args.data)


def _decode_mount_field(text: str) -> str:
    """/proc/self/mounts escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _mount_points() -> list[str]:
    try:
        with open("/proc/self/mounts") as f:
            return [_decode_mount_field(line.split(" ")[1]) for line in f if " " in line]
    except FileNotFoundError:
        raise _Failed("/proc/self/mounts is missing: a recursive umount needs /proc") from None


def _mounts_under(target: str) -> list[str]:
    """Mountpoints strictly below `target`, deepest first.

    "Deepest" in the mount tree, not in the path: the table lists a mount after the one it
    sits on, so reading it backwards gives leaves first, including mounts stacked on one
    point (listed once each) and a mount that covers older ones below it.
    """
    prefix = os.path.abspath(target).rstrip("/") + "/"
    return [point for point in reversed(_mount_points()) if point.startswith(prefix)]


def _run_umount(args: UmountArgs, ctx: _Context) -> None:
    while args.recursive and (inside := _mounts_under(args.target)):
        for point in inside:
            syscalls.umount2(point, args.flags)
    syscalls.umount2(args.target, args.flags)


def _run_hostname(name: str, ctx: _Context) -> None:
    syscalls.sethostname(name)


def _run_print(text: str, ctx: _Context) -> None:
    ctx.log(text)


def _run_exit(code: int, ctx: _Context) -> None:
    """Ends the process at once: no atexit handlers, no finally blocks, no cleanup.

    Only a phase where ending this process is the intent should contain `exit`.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def _wait_until(check: Callable[[], object], what: str, timeout: float):
    """Poll `check` every POLL_INTERVAL until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise _Failed(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(POLL_INTERVAL)


def _stat_kind(path: str, test: Callable[[int], bool] | None) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return test is None or test(mode)


def _waiter(test: Callable[[int], bool] | None, what: str):
    def run(path: str, ctx: _Context) -> None:
        _wait_until(lambda: _stat_kind(path, test), f"{what} {path}", ctx.wait_timeout)
    return run


def _connectable(address: tuple[int, object]) -> bool:
    family, where = address
    with socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(where)
        except OSError:
            return False
    return True


def _run_wait_for_socket(address: tuple[int, object], ctx: _Context) -> None:
    _wait_until(lambda: _connectable(address), "the socket to accept connections",
                ctx.wait_timeout)


# ---- the action table

def _path_action(name: str, run) -> _Action:
    usage = f"{name}:<path>"
    return _Action(_parse_path(usage), run, usage)


_ACTIONS: dict[str, _Action] = {
    "cd": _path_action("cd", _run_chdir),
    "chdir": _path_action("chdir", _run_chdir),
    "mkdir": _path_action("mkdir", _run_mkdir),
    "putenv": _Action(_parse_putenv, _run_putenv, "putenv:KEY=value"),
    "chmod": _Action(_parse_chmod, _run_chmod, "chmod:<file> <octal mode>"),
    "chown": _Action(_parse_chown, _run_chown, "chown:<file> <user> <group>"),
    "chown2": _Action(_parse_chown2, _run_chown2, "chown2:<file> <uid> <gid>"),
    "sticky": _path_action("sticky", _run_sticky),
    "exec": _Action(_parse_command, _run_exec, "exec:<shell command>"),
    "safeexec": _Action(_parse_command, _run_safeexec, "safeexec:<shell command>"),
    "create": _path_action("create", _run_create),
    "creat": _path_action("creat", _run_create),
    "write": _Action(_parse_file_text("write"), _writer(os.O_TRUNC, False),
                     "write:<file> <string>"),
    "writen": _Action(_parse_file_text("writen"), _writer(os.O_TRUNC, True),
                      "writen:<file> <string>"),
    "append": _Action(_parse_file_text("append"), _writer(os.O_APPEND, False),
                      "append:<file> <string>"),
    "appendn": _Action(_parse_appendn, _writer(os.O_APPEND, True), "appendn:<file> [<string>]"),
    "writefifo": _Action(_parse_file_text("writefifo"), _run_writefifo,
                         "writefifo:<fifo> <string>"),
    "spinningfifo": _Action(_parse_file_text("spinningfifo"), _run_spinningfifo,
                            "spinningfifo:<fifo> <string>"),
    "unlink": _path_action("unlink", _run_unlink),
    "mount": _Action(parse_mount_args, _run_mount,
                     "mount:<fstype> <source> <target> [<flags> [<data>]]"),
    "umount": _Action(parse_umount_args, _run_umount, "umount:<target> [<flags>]"),
    "hostname": _Action(_parse_hostname, _run_hostname, "hostname:<name>"),
    "print": _Action(_parse_text, _run_print, "print:<text>"),
    "log": _Action(_parse_text, _run_print, "log:<text>"),
    "exit": _Action(_parse_exit, _run_exit, "exit:[<code>]"),
    "wait_for_fs": _path_action("wait_for_fs", _waiter(None, "the path")),
    "wait_for_file": _path_action("wait_for_file", _waiter(stat.S_ISREG, "the file")),
    "wait_for_dir": _path_action("wait_for_dir", _waiter(stat.S_ISDIR, "the directory")),
    "wait_for_socket": _Action(_parse_socket, _run_wait_for_socket,
                               "wait_for_socket:</path|@abstract|host:port>"),
}

ACTIONS = frozenset(_ACTIONS)

_NO_SYMBOLS = "calls a C function by symbol name, and nsuwsgi has no C symbol table"
UNSUPPORTED = {
    "call": _NO_SYMBOLS,
    "callret": _NO_SYMBOLS,
    "callint": _NO_SYMBOLS,
    "callintret": _NO_SYMBOLS,
    "unix_signal": "installs a C signal handler by symbol name, and nsuwsgi has no C symbol "
                   "table",
    "rpc": "needs uWSGI's RPC subsystem, which nsuwsgi does not have",
    "retryrpc": "needs uWSGI's RPC subsystem, which nsuwsgi does not have",
    "alarm": "needs uWSGI's alarm subsystem, which nsuwsgi does not have",
}
_INSTEAD = "run a command with exec:<command> instead"


# ---- parsing

def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        hint = did_you_mean(phase, PHASES) or "phases: " + ", ".join(PHASES)
        raise ValueProblem(f"unknown hook phase '{phase}'", hint)


def _check_action(action: str) -> _Action:
    if action in UNSUPPORTED:
        raise ValueProblem(f"hook action '{action}' {UNSUPPORTED[action]}", _INSTEAD)
    if action not in _ACTIONS:
        hint = did_you_mean(action, _ACTIONS) or "actions: " + ", ".join(sorted(_ACTIONS))
        raise ValueProblem(f"unknown hook action '{action}'", hint)
    return _ACTIONS[action]


def parse_hook(text: str, phase: str, *, origin: Origin = COMMAND_LINE) -> Hook:
    """A `hook-<phase>` value (`[!]action:argument`) -> a validated Hook, or ValueProblem."""
    _check_phase(phase)
    action, colon, arg = text.partition(":")
    if not colon:
        raise ValueProblem(f"invalid hook '{text}': must be action:argument",
                           "for example mkdir:/run/app or exec:touch /run/ready")
    private = action.startswith("!")
    action = action.removeprefix("!")
    _validate(_check_action(action), action, arg)
    return Hook(phase, action, arg, private, origin, HOOK)


def legacy_hook(family: str, text: str, phase: str, *, origin: Origin = COMMAND_LINE) -> Hook:
    """An `exec-`, `mount-` or `umount-<phase>` value -> the equivalent validated Hook.

    `exec-as-root = CMD` is `exec:CMD`; `mount-in-jail = ARGS` is `mount:ARGS`. The
    `call-<phase>` options are rejected: they need a C symbol table.
    """
    _check_phase(phase)
    if family == "call":
        raise ValueProblem(f"call-{phase} {_NO_SYMBOLS}", f"use exec-{phase} = <command> instead")
    if family not in LEGACY_FAMILIES:
        hint = did_you_mean(family, LEGACY_FAMILIES) or "use exec-, mount- or umount-"
        raise ValueProblem(f"unknown hook option family '{family}'", hint)
    _validate(_ACTIONS[family], family, text)
    return Hook(phase, family, text, False, origin, family)


def _validate(action: _Action, name: str, arg: str) -> None:
    try:
        action.parse(arg)
    except ValueProblem as exc:
        hint = exc.hint or f"write {action.usage}"
        raise ValueProblem(f"{name}: {exc.message}", hint) from None


# ---- ordering and running

def order_phase(hooks: list[Hook]) -> list[Hook]:
    """Hooks in the order uWSGI runs them: by phase, then hook-*, mount, umount, exec.

    The sort is stable, so hooks of one family keep the order they were written in.
    """
    def rank(hook: Hook) -> tuple[int, int]:
        phase = PHASES.index(hook.phase) if hook.phase in PHASES else len(PHASES)
        return phase, FAMILIES.index(hook.family)
    return sorted(hooks, key=rank)


def run_hook(hook: Hook, log: Log, *, wait_timeout: float = WAIT_TIMEOUT) -> None:
    """Perform one hook; raise HookError (never OSError) when it fails."""
    try:
        action = _check_action(hook.action)
        action.run(action.parse(hook.arg), _Context(log, wait_timeout))
    except ValueProblem as exc:
        raise HookError(hook, exc.message) from None
    except OSError as exc:
        raise HookError(hook, _describe_os_error(exc, hook.private)) from None
    except _Failed as exc:
        raise HookError(hook, str(exc)) from None


def _describe_os_error(exc: OSError, private: bool) -> str:
    """`File exists (EEXIST): /path`; a private hook's path is not shown."""
    name = errno.errorcode.get(exc.errno or 0, "?")
    text = f"{exc.strerror or 'failed'} ({name})"
    if exc.filename is not None and not private:
        text += f": {os.fsdecode(exc.filename)}"
    return text


def run_phase(hooks: list[Hook], phase: str, log: Log, *,
              wait_timeout: float = WAIT_TIMEOUT) -> list[HookError]:
    """Run the hooks of `phase` in uWSGI's order, logging each one before it runs.

    In a fatal phase the first failure is raised (the rest do not run). In a non-fatal phase
    (as-emperor) a failure is logged and the next hook runs; the failures are returned.
    """
    _check_phase(phase)
    failures: list[HookError] = []
    for hook in order_phase([h for h in hooks if h.phase == phase]):
        log(hook.describe())
        try:
            run_hook(hook, log, wait_timeout=wait_timeout)
        except HookError as exc:
            if phase in FATAL_PHASES:
                raise
            log(f"{exc} (the {phase} phase is not fatal: continuing)")
            failures.append(exc)
    return failures
