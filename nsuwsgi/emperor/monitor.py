"""Which vassal files exist, and which of them changed since the last look.

uWSGI's Emperor polls: every 3 s it stats each vassal file and reloads the vassal when
`st_mtime` (whole seconds) grew. So it reacts up to 3 s late, misses a second edit made
within the same second as the first, ignores an mtime that went backwards (a restored
backup), and, since it stats through symlinks and compares mtimes only, misses a symlink that
was pointed at another file with an older mtime.

Here inotify wakes the Emperor at once, and "changed" means "the identity differs": for the
path itself (lstat) inode, device, mtime and ctime in nanoseconds and size; for a symlink also
its target string and the stat of the file it leads to. An atomic rename-over gives a new
inode, a retargeted symlink a new target, two same-size writes in one second different
nanosecond times. (Before Linux 6.13, which has multigrain timestamps, two same-size writes
within one clock tick, a few ms, with a scan between them can still look alike.)
inotify only says "look again": the caller then calls `Monitor.rescan()`, which scans and
compares identities. The Emperor also rescans on a slow timer, so a lost or overflowed event
queue, a watch that could not be added or a directory created later costs latency only.

Patterns follow `--emperor` (semantics §3.2): a directory (every vassal file directly in it)
or a glob. A vassal's name is its file's basename, as with uWSGI's dir monitor (its glob
monitor uses the whole matched path). If two patterns (or two directories matched by one
glob) hold the same basename, the first pattern (then the first path in sorted order) wins
and the other file is reported in the warnings.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from typing import Iterable, Iterator, NamedTuple


from nsuwsgi.watch import DIR_MASK, IN_DELETE_SELF, IN_IGNORED, IN_ISDIR, IN_MOVE_SELF, Inotify

EXTENSIONS = (".ini", ".json", ".yaml", ".yml")
SUPPORTED_SCHEMES = ("dir", "glob")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SELF_EVENTS = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF


class Pattern(NamedTuple):
    kind: str       # "dir" or "glob"
    path: str


class VassalFile(NamedTuple):
    name: str                   # the basename: the vassal's identity
    path: str                   # the path as found
    identity: tuple             # changes whenever the content may have changed
    uid: int                    # owner of the final target
    gid: int
    target: str | None = None   # realpath of the final target, for a symlink


class Changes:
    """Vassal names added, changed and removed, each list sorted."""

    __slots__ = ("added", "changed", "removed")

    def __init__(self, added: Iterable[str] = (), changed: Iterable[str] = (),
                 removed: Iterable[str] = ()):
        self.added = sorted(added)
        self.changed = sorted(changed)
        self.removed = sorted(removed)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def __eq__(self, other) -> bool:
        return isinstance(other, Changes) and (
            (self.added, self.changed, self.removed) ==
            (other.added, other.changed, other.removed))

    def __repr__(self) -> str:
        return f"Changes(added={self.added}, changed={self.changed}, removed={self.removed})"


def is_vassal_name(name: str) -> bool:
    """A vassal extension, and not hidden (so `.x.ini.swp`, `.x.ini` and `x.ini~` are not)."""
    return name.endswith(EXTENSIONS) and not name.startswith(".")


def parse_pattern(value: str) -> Pattern:
    """Interpret an `--emperor` value as uWSGI does (§3.2), for the dir and glob monitors.

    `dir://` and `glob://` force the kind. Otherwise a value whose glob matches exactly one
    directory is that directory; anything else, a missing path included, is a glob.
    """
    match = _SCHEME.match(value)
    if match:
        scheme = match.group(1)
        if scheme not in SUPPORTED_SCHEMES:
            raise ValueError(f"unsupported emperor monitor {scheme}:// (only a directory or a "
                             f"glob): {value}")
        return Pattern(scheme, value[match.end():])
    found = glob.glob(value)
    if len(found) == 1 and os.path.isdir(found[0]):
        return Pattern("dir", found[0])
    return Pattern("glob", value)


def _stat_fields(st: os.stat_result) -> tuple:
    return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def stat_vassal(path: str, link: os.stat_result | None = None,
                name: str | None = None) -> VassalFile | None:
    """The record of the vassal file at `path`; None unless it leads to a regular file.

    `link` is the path's lstat() and `name` its basename when the caller has them already.
    """
    try:
        if link is None:
            link = os.lstat(path)
        is_link = stat.S_ISLNK(link.st_mode)
        dest = os.readlink(path) if is_link else None
        st = os.stat(path) if is_link else link
    except OSError:     # gone, or a dangling or looping symlink
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    identity = _stat_fields(link)
    if is_link:
        identity += (dest, *_stat_fields(st))
    target = os.path.realpath(path) if is_link else None
    return VassalFile(name or os.path.basename(path), path, identity, st.st_uid, st.st_gid,
                      target)


def scan_dir(path: str, warnings: list[str]) -> list[VassalFile]:
    """Vassal files directly in directory `path` (not recursive).

    The safety rescan runs this every emperor-freq seconds over every vassal, so it costs one
    lstat() per vassal file and little Python: scandir() gives the names and paths.
    """
    found = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if is_vassal_name(name):
                    try:
                        link = entry.stat(follow_symlinks=False)
                    except OSError:         # gone since the listing
                        continue
                    vassal = stat_vassal(entry.path, link, name)
                    if vassal is not None:
                        found.append(vassal)
    except OSError as exc:
        warnings.append(f"cannot read vassal directory {path}: {exc.strerror}")
        return []
    found.sort(key=lambda v: v.name)
    return found


def scan_glob(pattern: str, warnings: list[str]) -> list[VassalFile]:
    """Vassal files matching `pattern`, in sorted path order."""
    paths = sorted(glob.glob(pattern))
    if not paths and not glob.has_magic(pattern):
        warnings.append(f"vassal pattern {pattern}: no such file or directory")
    found = (stat_vassal(p) for p in paths if is_vassal_name(os.path.basename(p)))
    return [v for v in found if v]


def scan(patterns: Iterable[str | Pattern]) -> tuple[dict[str, VassalFile], list[str]]:
    """(vassals by name, warnings). For a name found twice, the first pattern wins."""
    vassals: dict[str, VassalFile] = {}
    warnings: list[str] = []
    for pattern in patterns:
        if isinstance(pattern, str):
            pattern = parse_pattern(pattern)
        lister = scan_dir if pattern.kind == "dir" else scan_glob
        for vassal in lister(pattern.path, warnings):
            first = vassals.setdefault(vassal.name, vassal)
            if first is not vassal:
                warnings.append(f"vassal {vassal.path} ignored: {vassal.name} is already "
                                f"governed from {first.path}")
    return vassals, warnings


def diff(old: dict[str, VassalFile], new: dict[str, VassalFile]) -> Changes:
    changed = (n for n in old.keys() & new.keys()
               if (old[n].identity, old[n].path) != (new[n].identity, new[n].path))
    return Changes(new.keys() - old.keys(), changed, old.keys() - new.keys())


def glob_dirs(pattern: str) -> list[str]:
    """The directories a glob's matches live in (its directory part may itself be a glob)."""
    directory = os.path.dirname(pattern) or "."
    if not glob.has_magic(directory):
        return [directory]
    return [d for d in glob.glob(directory) if os.path.isdir(d)]


class Monitor:
    """Watches the vassal patterns with inotify; `rescan()` says what changed.

    Use: register `fileno()` with the loop; when readable call `dispatch()`, and if it returns
    True call `rescan()`. Call `rescan()` on a slow timer too. The first `rescan()` reports
    every vassal as added.
    """

    def __init__(self, patterns: Iterable[str | Pattern]):
        self.patterns = [p if isinstance(p, Pattern) else parse_pattern(p) for p in patterns]
        self.vassals: dict[str, VassalFile] = {}
        self.warnings: list[str] = []      # from the last rescan()
        self.inotify = Inotify()
        self._watches: dict[str, int] = {}    # absolute directory -> watch descriptor
        self._target_names: set[str] = set()  # basenames of the vassals' symlink targets

    def fileno(self) -> int:
        return self.inotify.fileno()

    def watch_dirs(self) -> list[str]:
        """Watch every directory a change can come from, drop the rest; returns warnings."""
        wanted = {os.path.abspath(d) for d in self._directories()}
        warnings = []
        for directory in wanted - self._watches.keys():
            try:
                self._watches[directory] = self.inotify.add_watch(directory, DIR_MASK)
            except OSError as exc:     # a missing directory is the scan's warning to give
                if os.path.isdir(directory):
                    warnings.append(f"cannot watch {directory}: {exc.strerror}")
        for directory in self._watches.keys() - wanted:
            self._unwatch(directory)
        return warnings

    def _directories(self) -> Iterator[str]:
        for pattern in self.patterns:
            if pattern.kind == "dir":
                yield pattern.path
            else:
                yield from glob_dirs(pattern.path)
        for vassal in self.vassals.values():
            if vassal.target:
                yield os.path.dirname(vassal.target)

    def _unwatch(self, directory: str) -> None:
        wd = self._watches.pop(directory)
        if wd not in self._watches.values():    # one directory reached by two paths
            self._remove_watch(wd)

    def _remove_watch(self, wd: int) -> None:
        try:
            self.inotify.rm_watch(wd)
        except OSError:     # the kernel already dropped it
            pass

    def dispatch(self) -> bool:
        """Drain pending events; True if one may concern a vassal (then call `rescan()`)."""
        relevant = False
        for event in self.inotify.read():
            if event.mask & _SELF_EVENTS:    # the directory went away: re-add on rescan
                self._forget(event.wd)
            relevant = relevant or self._relevant(event)
        return relevant

    def _relevant(self, event) -> bool:
        if not event.name or event.mask & IN_ISDIR:   # self events, overflow, subdirs
            return True
        return is_vassal_name(event.name) or event.name in self._target_names

    def _forget(self, wd: int) -> None:
        for directory in [d for d, w in self._watches.items() if w == wd]:
            del self._watches[directory]
        self._remove_watch(wd)     # a moved directory keeps its watch; we want the path

    def rescan(self) -> Changes:
        """Scan, compare with the last scan, follow symlink targets; the changes."""
        self.watch_dirs()      # first, so nothing changed after the scan goes unnoticed
        vassals, warnings = scan(self.patterns)
        old, self.vassals = self.vassals, vassals
        before = set(self._watches)
        problems = self.watch_dirs()
        if self._watches.keys() - before:      # new target directories: look once more
            self.vassals, warnings = scan(self.patterns)
        self.warnings = warnings + problems
        self._target_names = {os.path.basename(v.target) for v in self.vassals.values()
                              if v.target}
        return diff(old, self.vassals)

    def close(self) -> None:
        self.inotify.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
