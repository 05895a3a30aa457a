"""The raw item every loader produces, before nsuwsgi decides what it is.

uWSGI keeps one ordered list of `(key, value)` pairs for everything it reads: options, the
loader options that pulled files in (`ini`, `set`...) and placeholders. `%(name)` looks names up
in that whole list, so the loaders keep all three kinds here, in order, and only at the very end
split them into option entries and placeholders (see nsuwsgi.config).
"""

from __future__ import annotations

from dataclasses import dataclass

from nsuwsgi.errors import Origin

OPTION = "option"            # a key = value that may be an option (or, from a file, a placeholder)
PLACEHOLDER = "placeholder"  # defined by set-placeholder, or by set with a non-option name
LOADER = "loader"            # ini/json/yaml/include/inherit/set: consumed, never expanded
FILE_ARGUMENT = "file"       # a config file named on the command line without an option


@dataclass(frozen=True)
class Item:
    key: str
    value: str
    origin: Origin
    kind: str = OPTION
    from_file: bool = False  # only keys read from files may become placeholders


@dataclass(frozen=True)
class Parsed:
    """What a file parser returns: the items of the asked section, and which sections exist."""

    items: list[Item]
    found: bool
    sections: list[str]
