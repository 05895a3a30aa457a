"""The raw item every loader produces, before nsuwsgi decides what it is.

uWSGI keeps one ordered list of `(key, value)` pairs for everything it reads: options, the
loader options that pulled files in (`ini`, `set`...) and placeholders. `%(name)` looks names up
in that whole list, so the loaders keep all three kinds here, in order, and only at the very end
split them into option entries and placeholders (see nsuwsgi.config).
"""

from __future__ import annotations

from nsuwsgi.errors import Origin
from nsuwsgi.records import Frozen, set_field

OPTION = "option"            # a key = value that may be an option (or, from a file, a placeholder)
PLACEHOLDER = "placeholder"  # defined by set-placeholder, or by set with a non-option name
LOADER = "loader"            # ini/json/yaml/include/inherit/set: consumed, never expanded
FILE_ARGUMENT = "file"       # a config file named on the command line without an option


class Item(Frozen):
    """One raw key/value with its origin and kind (a records.Frozen class: see records.py)."""

    __slots__ = ("key", "value", "origin", "kind", "from_file")

    def __init__(self, key: str, value: str, origin: Origin, kind: str = OPTION,
                 from_file: bool = False):
        set_field(self, "key", key)
        set_field(self, "value", value)
        set_field(self, "origin", origin)
        set_field(self, "kind", kind)
        set_field(self, "from_file", from_file)     # only keys from files may be placeholders


class Parsed(Frozen):
    """What a file parser returns: the items of the asked section, and which sections exist."""

    __slots__ = ("items", "found", "sections")

    def __init__(self, items: list[Item], found: bool, sections: list[str]):
        set_field(self, "items", items)
        set_field(self, "found", found)
        set_field(self, "sections", sections)
