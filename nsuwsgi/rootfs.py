"""Build and check tenant root filesystems for `namespace = ROOTFS[:HOSTNAME]`.

`nsuwsgi rootfs DIR [--usr-from-host] [--user NAME:UID:GID ...] [--force]` lays out the
smallest tree a jail can run in: the directories a Linux program expects, a statically linked
busybox with one symlink per applet, the /dev nodes (or placeholders when not root), and
etc/passwd, group, hosts, hostname, nsswitch.conf, shells. With --usr-from-host, usr/ stays
empty, ready for the jail to bind the host's /usr over it read-only. docs/rootfs.md is the
user's guide.

The file etc/nsuwsgi-rootfs.txt marks a tree as ours: building again updates it in place.
Any other non-empty directory is refused unless --force.

A rootfs is written to by its tenant, and it is often rebuilt by root. So the builder never
follows a symlink inside the tree: every step goes through directory fds opened with
O_NOFOLLOW, files are replaced through a temporary name and rename(), and chown never follows.
A planted `etc -> /etc` or `home/alice -> /` stops the build; it never writes to the host.

`check_rootfs(path)` lists what would stop a jail from starting in a tree (no /proc, no
/dev/null, no usable /bin/sh, ...). It resolves symlinks as the jail would see them, inside
the tree.
"""

from __future__ import annotations

import argparse
import errno
import os
import posixpath
import re
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from collections.abc import Callable, Iterable

from nsuwsgi import __version__
from nsuwsgi.errors import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, UserError

BUSYBOX = "/bin/busybox"
MARKER = "etc/nsuwsgi-rootfs.txt"
MARKER_TITLE = "nsuwsgi tenant root filesystem"
BUSYBOX_HINT = "apt-get install busybox-static"

# (path, mode). Parents come before children.
DIRECTORIES = (
    ("bin", 0o755), ("sbin", 0o755), ("etc", 0o755), ("etc/dropbear", 0o755),
    ("dev", 0o755), ("dev/pts", 0o755), ("dev/shm", 0o1777),
    ("proc", 0o555), ("sys", 0o555), ("tmp", 0o1777), ("run", 0o755),
    ("var", 0o755), ("var/tmp", 0o1777), ("root", 0o700), ("home", 0o755), ("usr", 0o755),
)

# name, major, minor: the standard Linux character devices (Documentation/admin-guide/devices.txt).
# ptmx lets programs such as dropbear allocate a pty from the /dev/pts the jail mounts.
DEVICES = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
    ("tty", 5, 0), ("ptmx", 5, 2),
)
DEVICE_MODE = 0o666

DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
)

# Debian 12 is merged-/usr: /lib and /lib64 are symlinks into /usr.
USR_SYMLINKS = (("lib", "usr/lib"), ("lib64", "usr/lib64"))
USR_KEEP_MOUNT = "namespace-keep-mount = /usr:/usr:ro"

NOBODY = 65534
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
MAX_ID = 2**32 - 2          # (uid_t)-1 means "no change" to the kernel

PASSWD_BUILTIN = (
    ("root", "root:x:0:0:root:/root:/bin/sh"),
    ("nobody", f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/sbin/nologin"),
)
GROUP_BUILTIN = (("root", "root:x:0:"), ("nogroup", f"nogroup:x:{NOBODY}:"))

# Written only when absent: the tenant's edits survive a rebuild.
STATIC_FILES = (
    ("etc/hostname", "localhost\n"),
    ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ("etc/nsswitch.conf",
     "# nsuwsgi rootfs: local files only\n"
     "passwd:    files\ngroup:     files\nshadow:    files\n"
     "hosts:     files dns\nnetworks:  files\n"
     "protocols: files\nservices:  files\nethers:    files\nrpc:       files\n"),
    ("etc/shells", "/bin/sh\n/bin/ash\n"),
)


@dataclass(frozen=True)
class RootfsUser:
    name: str
    uid: int
    gid: int

    @property
    def home(self) -> str:
        return f"/home/{self.name}"

    def passwd_line(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}::{self.home}:/bin/sh"


def parse_user(spec) -> RootfsUser:
    """'NAME:UID:GID' (or a (name, uid, gid) tuple, or a RootfsUser) -> RootfsUser."""
    if isinstance(spec, RootfsUser):
        return spec
    hint = "write --user NAME:UID:GID, for example --user www-data:33:33"
    if isinstance(spec, (tuple, list)) and len(spec) == 3:
        parts = [str(p) for p in spec]
    elif isinstance(spec, str):
        parts = spec.split(":")
    else:
        raise UserError(f"{spec!r} is not NAME:UID:GID", option="--user", hint=hint)
    shown = ":".join(parts)
    if len(parts) != 3:
        raise UserError(f"'{shown}' is not NAME:UID:GID", option="--user", hint=hint)
    name, uid_text, gid_text = parts
    if not NAME_RE.fullmatch(name):
        raise UserError(f"'{name}' is not a valid user name", option="--user",
                        hint="use letters, digits, '_', '-' and '.', starting with a letter "
                             "or '_', at most 32 characters")
    ids = []
    for what, text in (("uid", uid_text), ("gid", gid_text)):
        if not text.isdigit() or int(text) > MAX_ID:
            raise UserError(f"'{shown}': {what} '{text}' is not a number from 0 to {MAX_ID}",
                            option="--user", hint=hint)
        ids.append(int(text))
    if name in ("root", "nobody"):
        raise UserError(f"'{name}' is built into every rootfs", option="--user",
                        hint="pick another name")
    return RootfsUser(name, ids[0], ids[1])


def _warn_stderr(message: str) -> None:
    print(f"nsuwsgi: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- building


def build_rootfs(path: str, *, usr_from_host: bool = False, users: Iterable = (),
                 force: bool = False, busybox: str = BUSYBOX,
                 warn: Callable[[str], None] | None = None) -> None:
    """Build (or update in place) a tenant root filesystem at `path`.

    `users` holds 'NAME:UID:GID' strings (or tuples). Problems the caller can fix raise
    UserError; `warn` (default: a line on stderr) receives the non-fatal ones, such as device
    placeholders written because mknod was not permitted.
    """
    warn = warn or _warn_stderr
    wanted = [parse_user(u) for u in users]
    _check_user_clashes(wanted)
    applets = _busybox_applets(busybox)
    root_path = os.path.abspath(path)
    if os.path.realpath(root_path) == "/":
        raise UserError(f"refusing to build a rootfs in {root_path}: it is the host's /",
                        hint="name a new directory, for example /srv/jails/tenant1")
    root = _open_root(root_path, force)
    try:
        _Builder(root, root_path, usr_from_host, wanted, busybox, applets, warn).build()
    finally:
        root.close()


def _check_user_clashes(users: list[RootfsUser]) -> None:
    names: dict[str, RootfsUser] = {}
    uids: dict[int, RootfsUser] = {}
    for user in users:
        if user.name in names:
            raise UserError(f"user '{user.name}' is given twice", option="--user",
                            hint="give each user once")
        if user.uid in uids or user.uid in (0, NOBODY):
            other = uids[user.uid].name if user.uid in uids else (
                "root" if user.uid == 0 else "nobody")
            raise UserError(f"uid {user.uid} of '{user.name}' already belongs to '{other}'",
                            option="--user", hint="give each user its own uid")
        names[user.name] = user
        uids[user.uid] = user


def _busybox_applets(busybox: str) -> list[tuple[str, str]]:
    """[(dir, name)] for every applet of `busybox`, dir being 'bin' or 'sbin'."""
    try:
        st = os.stat(busybox)
    except OSError:
        raise UserError(f"busybox not found at {busybox}", option="rootfs",
                        hint=BUSYBOX_HINT) from None
    if not stat.S_ISREG(st.st_mode) or not os.access(busybox, os.X_OK):
        raise UserError(f"{busybox} is not an executable file", option="rootfs",
                        hint=BUSYBOX_HINT)
    interp = elf_interpreter(busybox)
    if interp:
        raise UserError(f"{busybox} is dynamically linked (it needs {interp}), so it would not "
                        "run inside a jail", option="rootfs",
                        hint=f"{BUSYBOX_HINT}, which provides a static /bin/busybox")
    listing = _run_busybox(busybox, "--list-full")
    if listing is None:
        listing = _run_busybox(busybox, "--list")
    if not listing:
        raise UserError(f"{busybox} --list did not list any applet", option="rootfs",
                        hint=BUSYBOX_HINT)
    applets: dict[str, str] = {}
    for entry in listing:
        where, _, name = entry.rpartition("/")
        if entry == "linuxrc" or name in ("", ".", "..", "busybox") or "\0" in name:
            continue        # linuxrc is an init(8) stand-in that --install puts in / only
        folder = "sbin" if where in ("sbin", "usr/sbin") else "bin"
        applets.setdefault(name, folder)
    return sorted((folder, name) for name, folder in applets.items())


def _run_busybox(busybox: str, flag: str) -> list[str] | None:
    try:
        result = subprocess.run([busybox, flag], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        raise UserError(f"cannot run {busybox} {flag}: {err}", option="rootfs",
                        hint=BUSYBOX_HINT) from None
    if result.returncode != 0:
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _open_root(root_path: str, force: bool) -> "_Dir":
    try:
        os.makedirs(root_path, mode=0o755, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{root_path} exists and is not a directory", option="rootfs",
                        hint="name a directory") from None
    except OSError as err:
        raise UserError(f"cannot create {root_path}: {err.strerror}", option="rootfs",
                        hint="create its parent directory, or run as a user who may") from None
    try:
        fd = os.open(root_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise UserError(f"cannot open {root_path}: {err.strerror}", option="rootfs") from None
    root = _Dir(fd, root_path)
    try:
        if not force and not _is_ours(root) and _has_contents(root):
            raise UserError(f"{root_path} is not empty and is not an nsuwsgi rootfs "
                            f"(it has no {MARKER})", option="rootfs",
                            hint="name a new or empty directory, or pass --force to build "
                                 "over its contents")
    except BaseException:
        root.close()
        raise
    return root


def _is_ours(root: "_Dir") -> bool:
    etc = root.lstat("etc")
    if etc is None or not stat.S_ISDIR(etc.st_mode):
        return False
    try:
        st = os.stat(MARKER, dir_fd=root.fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


def _has_contents(root: "_Dir") -> bool:
    return any(name != "lost+found" for name in os.listdir(root.fd))


class _Dir:
    """A directory fd and the helpers that write below it without following symlinks."""

    def __init__(self, fd: int, shown: str):
        self.fd = fd
        self.shown = shown

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "_Dir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def where(self, name: str) -> str:
        return posixpath.join(self.shown, name)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _fail(self, name: str, err: OSError, doing: str) -> UserError:
        return UserError(f"cannot {doing} {self.where(name)}: {err.strerror}", option="rootfs",
                         hint="check the permissions and free space of the target directory")

    def _not_replacing(self, name: str, found: os.stat_result, wanted: str) -> UserError:
        kind = "a symlink" if stat.S_ISLNK(found.st_mode) else (
            "a directory" if stat.S_ISDIR(found.st_mode) else "not " + wanted)
        return UserError(f"{self.where(name)} is {kind}, where the rootfs needs {wanted}; "
                         "refusing to build through it", option="rootfs",
                         hint="remove it, or build into another directory")

    def subdir(self, name: str, mode: int) -> "_Dir":
        """Create (if missing) and open the directory `name`, then set its mode."""
        found = self.lstat(name)
        if found is None:
            try:
                os.mkdir(name, 0o700, dir_fd=self.fd)
            except FileExistsError:
                pass
            except OSError as err:
                raise self._fail(name, err, "create") from None
        elif not stat.S_ISDIR(found.st_mode):
            raise self._not_replacing(name, found, "a directory")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self.fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._not_replacing(name, self.lstat(name) or found, "a directory") \
                    from None
            raise self._fail(name, err, "open") from None
        sub = _Dir(fd, self.where(name))
        try:
            os.fchmod(fd, mode)
        except OSError as err:
            sub.close()
            raise self._fail(name, err, "chmod") from None
        return sub

    def read_text(self, name: str) -> str | None:
        """The content of regular file `name`, or None (missing, a symlink, unreadable)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=self.fd)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return f.read().decode("utf-8", errors="replace")

    def _tmp_name(self, name: str) -> str:
        return f".{name}.nsuwsgi-{os.getpid()}.tmp"

    def _install(self, tmp: str, name: str) -> None:
        """rename(tmp, name): replaces a file or symlink at `name`, never follows it."""
        found = self.lstat(name)
        if found is not None and stat.S_ISDIR(found.st_mode):
            self._unlink(tmp)
            raise self._not_replacing(name, found, "a file")
        try:
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as err:
            self._unlink(tmp)
            raise self._fail(name, err, "write") from None

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def write_bytes(self, name: str, data: bytes, mode: int) -> None:
        tmp = self._tmp_name(name)
        self._unlink(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=self.fd)
        except OSError as err:
            raise self._fail(name, err, "write") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), mode)
        except OSError as err:
            self._unlink(tmp)
            raise self._fail(name, err, "write") from None
        self._install(tmp, name)

    def write_text(self, name: str, text: str, mode: int = 0o644) -> None:
        if self.read_text(name) == text and self._mode(name) == mode:
            return
        self.write_bytes(name, text.encode(), mode)

    def _mode(self, name: str) -> int | None:
        found = self.lstat(name)
        return None if found is None else stat.S_IMODE(found.st_mode)

    def symlink(self, name: str, target: str) -> None:
        found = self.lstat(name)
        if found is not None and stat.S_ISLNK(found.st_mode):
            if os.readlink(name, dir_fd=self.fd) == target:
                return
        tmp = self._tmp_name(name)
        self._unlink(tmp)
        try:
            os.symlink(target, tmp, dir_fd=self.fd)
        except OSError as err:
            raise self._fail(name, err, "create") from None
        self._install(tmp, name)

    def mknod(self, name: str, major: int, minor: int, mode: int) -> None:
        """Create the character device `name`; PermissionError when not allowed."""
        rdev = os.makedev(major, minor)
        found = self.lstat(name)
        if (found is not None and stat.S_ISCHR(found.st_mode) and found.st_rdev == rdev
                and stat.S_IMODE(found.st_mode) == mode):
            return
        tmp = self._tmp_name(name)
        self._unlink(tmp)
        try:
            os.mknod(tmp, stat.S_IFCHR | mode, rdev, dir_fd=self.fd)
        except PermissionError:
            raise
        except OSError as err:
            raise self._fail(name, err, "create") from None
        # mknod applied the umask and created `tmp` itself (O_EXCL semantics): set the mode.
        os.chmod(tmp, mode, dir_fd=self.fd)
        self._install(tmp, name)

    def unlink_symlink_if(self, name: str, target: str) -> bool:
        found = self.lstat(name)
        if found is not None and stat.S_ISLNK(found.st_mode) and \
                os.readlink(name, dir_fd=self.fd) == target:
            os.unlink(name, dir_fd=self.fd)
            return True
        return False


class _Builder:
    def __init__(self, root: _Dir, root_path: str, usr_from_host: bool,
                 users: list[RootfsUser], busybox: str, applets: list[tuple[str, str]],
                 warn: Callable[[str], None]):
        self.root = root
        self.root_path = root_path
        self.usr_from_host = usr_from_host
        self.users = users
        self.busybox = busybox
        self.applets = applets
        self.warn = warn
        self.placeholders: list[str] = []

    def build(self) -> None:
        for name, mode in DIRECTORIES:
            self._dir(name, mode).close()
        # Mark the tree first, so that running the command again finishes a build that was
        # interrupted (disk full, ^C) without --force; then again with the final content.
        self._mark()
        self._busybox()
        self._devices()
        self._etc()
        self._homes()
        self._usr()
        self._mark()

    def _mark(self) -> None:
        with self._dir("etc", 0o755) as etc:
            etc.write_text(posixpath.basename(MARKER), self.marker_text())

    def _dir(self, relpath: str, mode: int) -> _Dir:
        """Open relpath (creating it), walking component by component without symlinks."""
        parts = relpath.split("/")
        current = self.root
        opened: list[_Dir] = []
        try:
            for i, part in enumerate(parts):
                final = i == len(parts) - 1
                existing_mode = dict(DIRECTORIES).get("/".join(parts[:i + 1]), 0o755)
                current = current.subdir(part, mode if final else existing_mode)
                opened.append(current)
        except BaseException:
            for d in opened:
                d.close()
            raise
        for d in opened[:-1]:
            d.close()
        return opened[-1]

    # ---- busybox

    def _busybox(self) -> None:
        with open(self.busybox, "rb") as f:
            data = f.read()
        with self._dir("bin", 0o755) as bin_dir:
            found = bin_dir.lstat("busybox")
            same = (found is not None and stat.S_ISREG(found.st_mode)
                    and stat.S_IMODE(found.st_mode) == 0o755
                    and found.st_size == len(data)
                    and self._read_bytes(bin_dir, "busybox") == data)
            if not same:
                bin_dir.write_bytes("busybox", data, 0o755)
            with self._dir("sbin", 0o755) as sbin_dir:
                for folder, name in self.applets:
                    if folder == "bin":
                        self._applet(bin_dir, name, "busybox")
                    else:
                        self._applet(sbin_dir, name, "../bin/busybox")

    @staticmethod
    def _read_bytes(d: _Dir, name: str) -> bytes | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=d.fd)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    @staticmethod
    def _applet(d: _Dir, name: str, target: str) -> None:
        found = d.lstat(name)
        if found is not None:
            # Keep what the tenant installed (say, a real bash at bin/sh); only refresh links
            # that point at a busybox.
            if not stat.S_ISLNK(found.st_mode):
                return
            if posixpath.basename(os.readlink(name, dir_fd=d.fd)) != "busybox":
                return
        d.symlink(name, target)

    # ---- /dev

    def _devices(self) -> None:
        with self._dir("dev", 0o755) as dev:
            denied: OSError | None = None
            for name, major, minor in DEVICES:
                if denied is None:
                    try:
                        dev.mknod(name, major, minor, DEVICE_MODE)
                        continue
                    except PermissionError as err:
                        denied = err
                found = dev.lstat(name)
                if found is not None and stat.S_ISCHR(found.st_mode) \
                        and found.st_rdev == os.makedev(major, minor):
                    continue        # a node from an earlier build as root: keep it
                if found is None or not stat.S_ISREG(found.st_mode) or found.st_size:
                    dev.write_bytes(name, b"", DEVICE_MODE)
                self.placeholders.append(name)
            for name, target in DEV_SYMLINKS:
                dev.symlink(name, target)
        if self.placeholders:
            shown = ", ".join(f"dev/{n}" for n in self.placeholders)
            self.warn(f"cannot create device nodes in {self.root_path}/dev "
                      f"({denied.strerror if denied else 'not permitted'}; it needs root), so "
                      f"{shown} are empty placeholder files: the jail must bind-mount the "
                      f"host's nodes over them, one line each such as "
                      f"'namespace-keep-mount = /dev/null' (see docs/rootfs.md)")

    # ---- /etc

    def _etc(self) -> None:
        with self._dir("etc", 0o755) as etc:
            passwd = self._merge(etc.read_text("passwd"), PASSWD_BUILTIN,
                                 [(u.name, u.passwd_line()) for u in self.users],
                                 id_field=2, what="uid")
            etc.write_text("passwd", passwd)
            # A user whose gid is already some group's joins that group; otherwise it gets a
            # group of its own name.
            group_text = etc.read_text("group") or ""
            taken = {_field(line, 2) for line in group_text.splitlines()}
            taken |= {_field(line, 2) for _, line in GROUP_BUILTIN}
            groups = []
            for user in self.users:
                if str(user.gid) not in taken:
                    groups.append((user.name, f"{user.name}:x:{user.gid}:"))
                    taken.add(str(user.gid))
            etc.write_text("group", self._merge(group_text, GROUP_BUILTIN, groups,
                                                id_field=2, what="gid"))
            for relpath, text in STATIC_FILES:
                name = posixpath.basename(relpath)
                found = etc.lstat(name)
                if found is None or stat.S_ISLNK(found.st_mode):
                    etc.write_text(name, text)

    def _merge(self, existing: str | None, builtin, wanted, *, id_field: int, what: str) -> str:
        """passwd/group text: the existing lines kept, built-ins ensured, `wanted` set."""
        lines = (existing or "").splitlines()
        wanted_by_name = dict(wanted)
        names = [_field(line, 0) for line in lines]
        for name, line in builtin:
            if name not in names:
                if name == "root":
                    lines.insert(0, line)
                    names.insert(0, name)
                else:
                    lines.append(line)
                    names.append(name)
        out = []
        for name, line in zip(names, lines):
            if name in wanted_by_name:
                line = wanted_by_name.pop(name)
            out.append(line)
        out.extend(wanted_by_name.values())
        seen: dict[str, str] = {}
        file = "etc/passwd" if what == "uid" else "etc/group"
        new_names = {n for n, _ in wanted}
        for line in out:
            name, ident = _field(line, 0), _field(line, id_field)
            if not name or ident is None:
                continue
            other = seen.get(ident)
            if other is not None and (name in new_names or other in new_names):
                raise UserError(f"{what} {ident} of '{name}' already belongs to '{other}' in "
                                f"{self.root_path}/{file}", option="--user",
                                hint=f"pick another {what}, or edit {file}")
            seen.setdefault(ident, name)
        return "\n".join(out) + "\n"

    def _homes(self) -> None:
        if not self.users:
            return
        with self._dir("home", 0o755) as home:
            for user in self.users:
                found = home.lstat(user.name)
                if found is not None and stat.S_ISDIR(found.st_mode):
                    continue            # the tenant's home: leave its mode and owner alone
                home.subdir(user.name, 0o700).close()
                if os.geteuid() == 0:
                    os.chown(user.name, user.uid, user.gid, dir_fd=home.fd,
                             follow_symlinks=False)

    # ---- /usr

    def _usr(self) -> None:
        if self.usr_from_host:
            for name, target in USR_SYMLINKS:
                found = self.root.lstat(name)
                if found is None or stat.S_ISLNK(found.st_mode):
                    self.root.symlink(name, target)
                else:
                    self.warn(f"{self.root_path}/{name} is a real directory, not a symlink to "
                              f"{target}: programs from the host's /usr may not find their "
                              "libraries in the jail")
            with self._dir("usr", 0o755) as usr:
                if os.listdir(usr.fd):
                    self.warn(f"{self.root_path}/usr is not empty; the read-only /usr "
                              "keep-mount will hide its contents inside the jail")
            if not os.path.islink("/lib"):
                self.warn("the host's /lib is not a symlink into /usr (the host is not "
                          "merged-/usr), so host programs bound in from /usr may not find "
                          "their libraries in the jail")
        else:
            with self._dir("usr", 0o755) as usr:
                for name, target in USR_SYMLINKS:
                    if usr.lstat(posixpath.basename(target)) is None:
                        self.root.unlink_symlink_if(name, target)

    def marker_text(self) -> str:
        options = []
        if self.usr_from_host:
            options.append("--usr-from-host")
        options += [f"--user {u.name}:{u.uid}:{u.gid}" for u in self.users]
        config = [f"namespace = {self.root_path}:HOSTNAME"]
        notes = []
        if self.usr_from_host:
            config.append(USR_KEEP_MOUNT)
            notes.append(
                "usr/ is empty on purpose: it is the mount point for the host's /usr. The jail "
                f"config should contain `{USR_KEEP_MOUNT}` (the read-only keep-mount form) so "
                "that Python and the other host tools are available, read-only, inside. lib "
                "and lib64 are symlinks into usr/, as on merged-/usr Debian 12.")
        if self.placeholders:
            config += [f"namespace-keep-mount = /dev/{n}" for n in self.placeholders]
            notes.append(
                "dev/" + ", dev/".join(self.placeholders) + " are empty placeholder files "
                "(the rootfs was built without permission to create device nodes). The jail "
                "must bind-mount the host's nodes over them, as in the keep-mount lines above.")
        text = [
            MARKER_TITLE,
            "",
            f"This directory was built by `nsuwsgi rootfs` (nsuwsgi {__version__}). This file "
            "marks it as an nsuwsgi rootfs, so running the command again updates it in place.",
            "",
            f"Built with: nsuwsgi rootfs {self.root_path}" + "".join(f" {o}" for o in options),
            f"Busybox applets: {len(self.applets)} (bin/ and sbin/ hold links to bin/busybox)",
            f"Device nodes: {'placeholders' if self.placeholders else 'real'}",
            "",
            *"\n\n".join(notes).splitlines(),
            *([""] if notes else []),
            "Use it from an nsuwsgi config:",
            "",
            *(f"    {line}" for line in config),
            "",
            "See docs/rootfs.md in the nsuwsgi sources.",
        ]
        return "\n".join(textwrap.fill(line, 78, break_long_words=False,
                                       break_on_hyphens=False)
                         if line and not line.startswith("    ") else line
                         for line in text) + "\n"


def _field(line: str, index: int) -> str | None:
    if not line or line.startswith("#"):
        return None
    parts = line.split(":")
    return parts[index] if len(parts) > index else None


# ---------------------------------------------------------------- checking


def check_rootfs(path: str, *, mounted: Iterable[str] | None = None) -> list[str]:
    """Problems that would stop a jail from starting with `path` as its rootfs; [] if none.

    Each problem is one line, "rootfs PATH lacks /proc (hint: ...)", ready to be prefixed with
    the option name. Symlinks are followed as the jail sees them: inside the tree.

    `mounted` lists the in-jail destinations the jail will bind-mount (its keep-mounts, for
    example ["/usr", "/dev/null"]): paths under them count as present. When it is given,
    /dev/null placeholders (empty files) that are not mounted over are reported too.
    """
    hint_build = f"build one with nsuwsgi rootfs {path}"
    if not os.path.lexists(path):
        return [f"rootfs {path} does not exist (hint: {hint_build})"]
    if not os.path.isdir(path):
        return [f"rootfs {path} is not a directory (hint: {hint_build})"]
    mounts = [posixpath.normpath("/" + m.lstrip("/")) for m in (mounted or ())]
    problems = []
    has_dev = False
    for name in ("proc", "dev"):
        kind, where = _resolve(path, f"/{name}", ())
        if kind == "missing":
            problems.append(f"rootfs {path} lacks /{name} "
                            f"(hint: create it, or {hint_build})")
        elif not os.path.isdir(os.path.join(path, where.lstrip("/"))):
            problems.append(f"rootfs {path} has a /{name} that is not a directory "
                            f"(hint: make it a directory, or {hint_build})")
        else:
            has_dev = has_dev or name == "dev"
    if has_dev:
        problems += _check_dev_null(path, mounts, mounted is not None)
    problems += _check_sh(path, mounts)
    return problems


def _check_dev_null(path: str, mounts: list[str], strict: bool) -> list[str]:
    kind, where = _resolve(path, "/dev/null", mounts)
    if kind == "mounted":
        return []
    hint = (f"daemons' stdin comes from it; create it with 'mknod -m 666 {path}/dev/null c 1 "
            f"3', or rebuild with nsuwsgi rootfs {path} as root")
    if kind == "missing":
        return [f"rootfs {path} lacks /dev/null (hint: {hint})"]
    st = os.lstat(os.path.join(path, where.lstrip("/")))
    if stat.S_ISCHR(st.st_mode):
        if st.st_rdev != os.makedev(1, 3):
            return [f"rootfs {path}: /dev/null is not the null device (char 1:3) "
                    f"(hint: {hint})"]
        if os.statvfs(os.path.join(path, "dev")).f_flag & os.ST_NODEV:
            return [f"rootfs {path} lies on a filesystem mounted nodev, so its /dev/null "
                    "cannot be opened (hint: put the rootfs on another filesystem, or add "
                    "namespace-keep-mount = /dev/null)"]
        return []
    if stat.S_ISREG(st.st_mode) and strict:
        return [f"rootfs {path}: /dev/null is a placeholder file and nothing is mounted over "
                "it (hint: add namespace-keep-mount = /dev/null, or rebuild the rootfs as "
                "root)"]
    if not stat.S_ISREG(st.st_mode):
        return [f"rootfs {path}: /dev/null is not a character device (hint: {hint})"]
    return []


def _check_sh(path: str, mounts: list[str]) -> list[str]:
    hint = (f"hooks and daemons run through /bin/sh; rebuild with nsuwsgi rootfs {path}, "
            "which installs a static busybox")
    kind, where = _resolve(path, "/bin/sh", mounts)
    if kind == "mounted":
        return []
    if kind == "missing":
        return [f"rootfs {path} lacks /bin/sh (hint: {hint})"]
    full = os.path.join(path, where.lstrip("/"))
    st = os.stat(full)
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        return [f"rootfs {path}: /bin/sh ({where}) is not an executable file (hint: {hint})"]
    interp = elf_interpreter(full)
    if interp:
        ikind, _ = _resolve(path, interp, mounts)
        if ikind == "missing":
            return [f"rootfs {path}: /bin/sh is dynamically linked and needs {interp}, which "
                    f"the rootfs lacks (hint: {hint})"]
    return []


def _resolve(root: str, inner: str, mounts) -> tuple[str, str]:
    """Follow the jail path `inner` inside `root`, symlinks included, as the jail would.

    Returns ("found", jail path reached), ("mounted", jail path of the mount it enters) or
    ("missing", jail path that does not exist).
    """
    parts = [p for p in inner.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        current = "/" + "/".join(done + [name])
        if any(current == m or current.startswith(m.rstrip("/") + "/") for m in mounts):
            return "mounted", current
        try:
            st = os.lstat(os.path.join(root, *done, name))
        except OSError:
            return "missing", current
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                return "missing", current
            target = os.readlink(os.path.join(root, *done, name))
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        if parts and not stat.S_ISDIR(st.st_mode):
            return "missing", current
        done.append(name)
    return "found", "/" + "/".join(done)


def elf_interpreter(path: str) -> str | None:
    """The PT_INTERP of ELF file `path` (its dynamic loader), or None: static, or not ELF."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return None
            is64 = head[4] == 2
            order = "little" if head[5] == 1 else "big"

            def num(offset: int, size: int) -> int:
                return int.from_bytes(head[offset:offset + size], order)

            if is64:
                phoff, phentsize, phnum = num(32, 8), num(54, 2), num(56, 2)
            else:
                phoff, phentsize, phnum = num(28, 4), num(42, 2), num(44, 2)
            for i in range(min(phnum, 256)):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                if len(ph) < (56 if is64 else 32):
                    return None
                if int.from_bytes(ph[0:4], order) != 3:     # PT_INTERP
                    continue
                if is64:
                    offset, size = (int.from_bytes(ph[8:16], order),
                                    int.from_bytes(ph[32:40], order))
                else:
                    offset, size = (int.from_bytes(ph[4:8], order),
                                    int.from_bytes(ph[16:20], order))
                f.seek(offset)
                return f.read(min(size, 4096)).split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- command line


class _ArgumentError(Exception):
    pass


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and calling sys.exit."""

    def error(self, message):
        raise _ArgumentError(message)

    def exit(self, status=0, message=None):
        if message:
            print(message, file=sys.stderr, end="")
        raise _HelpShown()


def _parser() -> _Parser:
    parser = _Parser(
        prog="nsuwsgi rootfs", allow_abbrev=False,
        description="Build (or update in place) a tenant root filesystem for "
                    "`namespace = DIR[:HOSTNAME]`. See docs/rootfs.md.")
    parser.add_argument("dir", metavar="DIR", help="the directory to build; created if missing")
    parser.add_argument("--usr-from-host", action="store_true",
                        help="leave usr/ empty for the jail's read-only bind of the host's "
                             f"/usr ({USR_KEEP_MOUNT}) and add lib -> usr/lib, "
                             "lib64 -> usr/lib64")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:UID:GID",
                        help="add a user (and its group) to etc/passwd and etc/group, with "
                             "home /home/NAME; repeatable")
    parser.add_argument("--force", action="store_true",
                        help="build over a non-empty directory that is not an nsuwsgi rootfs "
                             "(its files stay; ours are written over)")
    parser.add_argument("--busybox", default=BUSYBOX, metavar="PATH",
                        help=f"the statically linked busybox to copy (default {BUSYBOX})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`nsuwsgi rootfs ...`: 0 when built, 2 for a problem the user can fix (one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _HelpShown:
        return EXIT_OK
    except _ArgumentError as err:
        print(f"nsuwsgi: error: rootfs: {err} (hint: nsuwsgi rootfs DIR [--usr-from-host] "
              "[--user NAME:UID:GID ...] [--force])", file=sys.stderr)
        return EXIT_CONFIG
    try:
        build_rootfs(args.dir, usr_from_host=args.usr_from_host, users=args.user,
                     force=args.force, busybox=args.busybox)
    except UserError as err:
        print(f"nsuwsgi: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as err:      # something the checks above did not foresee: still one line
        what = err.strerror or str(err)
        if err.filename:
            what += f": {err.filename}"
        print(f"nsuwsgi: error: rootfs: {what}", file=sys.stderr)
        return EXIT_RUNTIME
    root = os.path.abspath(args.dir)
    print(f"nsuwsgi: rootfs {root} is ready")
    print(f"  use it with: namespace = {root}:HOSTNAME")
    if args.usr_from_host:
        print(f"               {USR_KEEP_MOUNT}")
    for problem in check_rootfs(root):
        _warn_stderr(problem)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
