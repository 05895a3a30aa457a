"""Walk the sources in uWSGI's order and flatten them into one ordered list of items.

uWSGI appends every option to one list and runs the "immediate" loader options at once, so a
file's options land exactly where the file is named. This module does the same for `ini`,
`json`/`js`, `yaml`/`yml`, `include` (format chosen by suffix) and config files given on the
command line, plus:

  * `set = k=v`: the option k, or the placeholder k when k is not an option name;
  * `set-placeholder` / `set-ph = k=v`: the placeholder k; an option name is an error;
  * `inherit = FILE`: uWSGI applies it late, appending the file at the end of its option list
    (its `dirty_config` restart). nsuwsgi loads it right after the file that names it (or after
    the whole command line, for `--inherit`). As in uWSGI, the inherited values come later than
    the inheriting file's, so for scalar options they win, while `%(name)` (first value) sees
    the inheriting file's values first: the usual "template" layout works. Unlike uWSGI, they do
    not jump over later command-line options, and the inheriting file may refer to names the
    template defines;
  * `FILE:section` (split at the last `:`), default section `uwsgi`; `:section` alone reuses
    the last file read in that format. A missing section is an error (uWSGI only warns);
  * relative paths are relative to the directory nsuwsgi started in, as in uWSGI: use `%d`
    for the directory of the file being read;
  * a file that includes itself, directly or not, is an error naming the chain; the same file
    twice side by side is fine.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from nsuwsgi import options
from nsuwsgi.config import files, magic
from nsuwsgi.config.commandline import is_option_name
from nsuwsgi.config.ini import parse_ini
from nsuwsgi.config.items import FILE_ARGUMENT, LOADER, OPTION, PLACEHOLDER, Item, Parsed
from nsuwsgi.errors import Origin, UserError
from nsuwsgi.records import Frozen, set_field

DEFAULT_SECTION = "uwsgi"


def parse_json(text: str, path: str, section: str) -> Parsed:
    from nsuwsgi.config import structured      # PyYAML costs ~15 ms: only for such files
    return structured.parse_json(text, path, section)


def parse_yaml(text: str, path: str, section: str) -> Parsed:
    from nsuwsgi.config import structured
    return structured.parse_yaml(text, path, section)


PARSERS: dict[str, Callable[[str, str, str], Parsed]] = {
    "ini": parse_ini, "json": parse_json, "yaml": parse_yaml}
SUFFIXES = {".ini": "ini", ".json": "json", ".js": "json", ".yaml": "yaml", ".yml": "yaml"}
FILE_OPTIONS = {"ini", "json", "yaml"}


class FileRef(Frozen):
    """A config file to read: as given, where it is, which section, which parser."""

    __slots__ = ("given", "path", "real", "section", "asked", "fmt")

    def __init__(self, given: str, path: str, real: str, section: str, asked: str, fmt: str):
        set_field(self, "given", given)     # the path as written, without :section (magic %o)
        set_field(self, "path", path)       # absolute, normalised, symlinks kept: for messages
        set_field(self, "real", real)       # symlinks resolved: identity for include cycles
        set_field(self, "section", section)     # the section to read
        set_field(self, "asked", asked)     # the section as written after ':' (magic %x)
        set_field(self, "fmt", fmt)

    @property
    def label(self) -> str:
        return self.path if self.section == DEFAULT_SECTION else f"{self.path}:{self.section}"


class Collector:
    """The ordered items of one load, the files read, and the chain of files being read."""

    def __init__(self, cwd: str, startup: dict[str, str]):
        self.cwd = cwd
        self.startup = startup
        self.first_file: dict[str, str] | None = None
        self.items: list[Item] = []
        self.files: list[str] = []
        self.chain: list[FileRef] = []
        self.last: dict[str, FileRef] = {}

    # ---- dispatch

    def run(self, items: list[Item]) -> None:
        """Take the top-level items (environment, then command line)."""
        inherited: list[Item] = []
        for item in items:
            self.take(item, inherited)
        self.load_inherited(inherited)

    def take(self, item: Item, inherited: list[Item]) -> None:
        if item.kind == FILE_ARGUMENT:
            self.load(item.value, None, item.origin)
            return
        opt = options.lookup(item.key)
        name = opt.name if opt is not None else None
        if name not in options.LOADER_OPTIONS:
            self.items.append(item)
            return
        self.items.append(Item(item.key, item.value, item.origin, kind=LOADER))
        if name in FILE_OPTIONS:
            self.load(item.value, name, item.origin)
        elif name == "include":
            self.load(item.value, None, item.origin)
        elif name == "inherit":
            inherited.append(item)
        elif name == "set":
            self.take(set_item(item), inherited)
        else:
            self.items.append(placeholder_item(item))

    def load_inherited(self, inherited: list[Item]) -> None:
        for item in inherited:
            self.load(item.value, None, item.origin)

    # ---- files

    def load(self, spec: str, fmt: str | None, origin: Origin) -> None:
        ref = self.resolve(spec, fmt, origin)
        self.check_cycle(ref, origin)
        text = magic.substitute(files.read_config(ref.path, origin), self.magic_table(ref))
        parsed = PARSERS[ref.fmt](text, ref.path, ref.section)
        if not parsed.found:
            raise missing_section(ref, parsed.sections, origin)
        self.remember(ref)
        inherited: list[Item] = []
        self.chain.append(ref)
        try:
            for item in parsed.items:
                self.take(item, inherited)
            self.load_inherited(inherited)
        finally:
            self.chain.pop()

    def resolve(self, spec: str, fmt: str | None, origin: Origin) -> FileRef:
        given, asked = split_section(spec, origin)
        if not given:
            return self.previous_file(spec, fmt, asked, origin)
        fmt = fmt or format_from_suffix(given, origin)
        path = os.path.normpath(os.path.join(self.cwd, given))
        return FileRef(given, path, os.path.realpath(path), asked or DEFAULT_SECTION, asked, fmt)

    def previous_file(self, spec: str, fmt: str | None, asked: str, origin: Origin) -> FileRef:
        """`:section` alone: the last file read in this format (in any format for include)."""
        previous = self.last.get(fmt or "any")
        if previous is None:
            raise UserError(f"'{spec}' means a section of the previous file, but no file was "
                            "read before", origin=origin, hint="write FILE:SECTION")
        return FileRef(previous.given, previous.path, previous.real, asked or DEFAULT_SECTION,
                       asked, previous.fmt)

    def check_cycle(self, ref: FileRef, origin: Origin) -> None:
        for index, outer in enumerate(self.chain):
            if (outer.real, outer.section) == (ref.real, ref.section):
                labels = [f.label for f in self.chain[index:]] + [ref.label]
                raise UserError("include cycle: " + " -> ".join(labels), origin=origin,
                                hint="remove one of these includes")

    def magic_table(self, ref: FileRef) -> dict[str, str]:
        table = magic.file_vars(ref.given, ref.asked, self.cwd)
        if self.first_file is None:
            self.first_file = magic.first_file_vars(table)
        return {**self.startup, **self.first_file, **table}

    def remember(self, ref: FileRef) -> None:
        if ref.path not in self.files:
            self.files.append(ref.path)
        self.last[ref.fmt] = ref
        self.last["any"] = ref


# --------------------------------------------------------------------------- helpers

def split_section(spec: str, origin: Origin) -> tuple[str, str]:
    """`file.ini:name` -> ("file.ini", "name"), split at the last `:`."""
    if spec == "-" or "://" in spec:
        raise UserError(f"cannot load '{spec}': reading a config from stdin or a URL is not "
                        "supported", origin=origin, hint="save the config to a file and name it")
    files.check_path(spec, origin)
    given, colon, asked = spec.rpartition(":")
    if not colon:
        return spec, ""
    return given, asked


def format_from_suffix(given: str, origin: Origin) -> str:
    suffix = os.path.splitext(given)[1].lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    hint = ("XML configs are not supported; convert it to ini" if suffix == ".xml" else
            f"name it .ini, .json or .yaml, or load it with --ini {given}")
    raise UserError(f"cannot tell the format of '{given}' from its name", origin=origin,
                    hint=hint)


def missing_section(ref: FileRef, sections: list[str], origin: Origin) -> UserError:
    def shown(name: str) -> str:
        return f"[{name}]" if ref.fmt == "ini" else f"'{name}'"
    if sections:
        present = "sections present: " + ", ".join(shown(s) for s in sections)
    elif ref.fmt == "ini":
        present = f"the file has no sections; add a [{DEFAULT_SECTION}] line"
    else:
        present = f"the file has no sections; put the options under a top-level '{ref.section}'"
    return UserError(f"no section {shown(ref.section)} in {ref.path}", origin=origin,
                     hint=present)


def split_assignment(item: Item) -> tuple[str, str]:
    """`set = NAME=VALUE` -> (NAME, VALUE)."""
    name, equals, value = item.value.partition("=")
    name = name.strip()
    if not equals or not name:
        raise UserError(f"'{item.value}' is not NAME=VALUE", origin=item.origin,
                        option=item.key, hint=f"write {item.key} = NAME=VALUE")
    return name, value


def set_item(item: Item) -> Item:
    name, value = split_assignment(item)
    kind = OPTION if is_option_name(name) else PLACEHOLDER
    return Item(name, value, item.origin, kind=kind, from_file=item.from_file)


def placeholder_item(item: Item) -> Item:
    name, value = split_assignment(item)
    if is_option_name(name):
        raise UserError(f"'{name}' is an option name, so it cannot be a placeholder",
                        origin=item.origin, option=item.key,
                        hint=f"use set = {name}=VALUE, or choose another name")
    return Item(name, value, item.origin, kind=PLACEHOLDER)
