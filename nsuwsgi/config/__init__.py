"""Configuration loaders: argv, environment, ini, JSON and YAML, with uWSGI's substitutions.

Loaders only produce raw entries (key, value, origin) in uWSGI's order; typing and validation
happen once, in options.build_config. Keeping the two apart means every loader reports errors
with the same file:line precision and no loader needs to know what an option means.

Contract used by the CLI:
    load(argv, environ, cwd) -> Loaded(entries, placeholders, files)
    load_config(argv, environ, cwd) -> options.Config        (raises ConfigErrors)

The steps, each in its own module:
    commandline.py  UWSGI_* variables (known option names only), then argv
    collect.py      ini/json/yaml/include/inherit/set/set-placeholder, in place
    magic.py        %d %n %p ... over each file's raw text (ini.py, structured.py parse it)
    substitute.py   $(ENV), then @(file), then %(name), over every value

The placeholder rule. uWSGI accepts any unknown key in a file and keeps it as a placeholder
for `%(key)`, so a typo such as `atach-daemon = ...` is silently ignored and the daemon never
starts. nsuwsgi decides instead:
    * a key from a config FILE that is no option (neither in nsuwsgi's table nor a known uWSGI
      name) but that some value refers to with `%(key)` (or inside `%(key + 1)`) is a
      placeholder: it goes into `placeholders` and not into `entries`;
    * an unknown key that nothing refers to stays in `entries`, so build_config reports it as
      an unknown option with a did-you-mean;
    * unknown keys from argv or the environment are never placeholders;
    * `set-placeholder` always defines a placeholder; `set` does when its name is no option.
`placeholders` holds the first (expanded) value of each name, as `%(name)` sees it.

Every problem is a UserError (or ConfigErrors) naming the file and line or the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from nsuwsgi import options
from nsuwsgi.config import magic, substitute
from nsuwsgi.config.collect import Collector
from nsuwsgi.config.commandline import argv_items, environment_items, is_option_name
from nsuwsgi.config.items import LOADER, PLACEHOLDER, Item
from nsuwsgi.errors import Origin, UserError
from nsuwsgi.records import Frozen, set_field


class Loaded(Frozen):
    """What one load read: entries to type, placeholders, and the files it came from."""

    __slots__ = ("entries", "placeholders", "files")

    def __init__(self, entries: list[options.Entry], placeholders: dict[str, str],
                 files: tuple[str, ...]):
        set_field(self, "entries", entries)     # option entries, in order, fully substituted
        set_field(self, "placeholders", placeholders)   # name -> first value
        set_field(self, "files", files)     # every config file read, absolute, in reading order


def load(argv: list[str], environ: Mapping[str, str], cwd: str | None = None) -> Loaded:
    """Read the environment, the command line and every file they name, then substitute."""
    cwd = startup_directory(cwd)
    collector = Collector(cwd, magic.startup_vars(cwd))
    try:
        collector.run(environment_items(environ) + argv_items(list(argv)))
    except RecursionError:
        raise UserError("the configuration nests too deeply (includes or set)",
                        hint="flatten the include chain") from None
    items = expand(collector.items, environ, cwd)
    return split(items, collector.files)


def load_config(argv: list[str], environ: Mapping[str, str],
                cwd: str | None = None) -> options.Config:
    loaded = load(argv, environ, cwd)
    return options.build_config(loaded.entries, loaded.placeholders, loaded.files)


def startup_directory(cwd: str | None) -> str:
    if cwd is not None:
        return os.path.abspath(cwd)
    try:
        return os.getcwd()
    except OSError as error:
        raise UserError(f"cannot find the current directory: {error.strerror}",
                        origin=Origin(source="startup"),
                        hint="start nsuwsgi from a directory that exists") from None


def expand(items: list[Item], environ: Mapping[str, str], cwd: str) -> list[Item]:
    """The three passes, in uWSGI's order: $(...), @(...), %(...)."""
    items = substitute.expand_items(items, "$", substitute.environment_resolver(environ))
    items = substitute.expand_items(items, "@", substitute.FileReader(cwd))
    referenced = substitute.referenced_names(items)
    items = substitute.Placeholders(items).expand_all()
    return [mark_placeholder(item, referenced) for item in items]


def mark_placeholder(item: Item, referenced: set[str]) -> Item:
    """The placeholder rule (module docstring): unknown file keys that something refers to."""
    if item.kind == LOADER or item.kind == PLACEHOLDER or not item.from_file:
        return item
    if item.key in referenced and not is_option_name(item.key):
        return Item(item.key, item.value, item.origin, kind=PLACEHOLDER, from_file=True)
    return item


def split(items: list[Item], files: list[str]) -> Loaded:
    entries: list[options.Entry] = []
    placeholders: dict[str, str] = {}
    for item in items:
        if item.kind == PLACEHOLDER:
            placeholders.setdefault(item.key, item.value)
        elif item.kind != LOADER:
            entries.append(options.Entry(item.key, item.value, item.origin))
    return Loaded(entries, placeholders, tuple(files))
