"""uWSGI's own ini syntax (core/ini.c), which is not Python's configparser.

Existing uWSGI files rely on its quirks, so they are kept: comments only at the start of a
line (`a = b ; c` is the value `b ; c`), the split at the first `=` (`i=j=k` is key `i`, value
`j=k`), a bare key meaning an empty value (true for flags), quotes kept, no continuations, every
repeated key kept in order, keys outside the asked section ignored.

Where uWSGI silently misreads a typo, nsuwsgi stops with the file and line instead: a section
header without its closing bracket (uWSGI drops the last character whatever it is), and a line
with an empty key (`= value`) in the asked section.
"""

from __future__ import annotations

from nsuwsgi.config.items import Item, Parsed
from nsuwsgi.errors import ConfigErrors, Origin, UserError

BLANKS = " \t\r"


def parse_ini(text: str, path: str, section: str) -> Parsed:
    """The items of `[section]` in `text` (magic variables already replaced)."""
    items: list[Item] = []
    problems: list[UserError] = []
    sections: list[str] = []
    current: str | None = ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(BLANKS)
        origin = Origin(file=path, line=number)
        if not line or line[0] in ";#":
            continue
        if line[0] == "[":
            current = section_name(line, origin, problems)
            if current is not None:
                sections.append(current)
            continue
        if current != section:
            continue
        item = key_value(line, origin, problems)
        if item is not None:
            items.append(item)
    raise_problems(problems)
    return Parsed(items, section in sections, sections)


def section_name(line: str, origin: Origin, problems: list[UserError]) -> str | None:
    if not line.endswith("]"):
        problems.append(UserError(f"malformed section header '{line}'", origin=origin,
                                  hint="close it with ], e.g. write [uwsgi]"))
        return None
    return line[1:-1]


def key_value(line: str, origin: Origin, problems: list[UserError]) -> Item | None:
    key, _, value = line.partition("=")
    key = key.rstrip(BLANKS)
    if not key:
        problems.append(UserError(f"line '{line}' has no option name before '='", origin=origin,
                                  hint="write option = value"))
        return None
    return Item(key, value.lstrip(BLANKS), origin, from_file=True)


def raise_problems(problems: list[UserError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)
