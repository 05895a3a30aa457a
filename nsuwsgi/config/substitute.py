"""The three passes uWSGI runs over option values once every file is loaded.

In this order, over every value except the loader options' own (`ini`, `set`...: uWSGI's
"immediate options are never expanded"):

  1. `$(NAME)`  the environment variable NAME;
  2. `@(path)`  the contents of a file, with ONE trailing \\n or \\r removed; relative paths
                are relative to the directory nsuwsgi started in;
  3. `%(name)`  the FIRST value of option or placeholder `name`; with spaces inside, a little
                left-to-right arithmetic: `%(a + 3)`, `%(a b)` (concatenation), `+ - * /`,
                and `++` / `--` to add or subtract one.

Placeholder values (set-placeholder, set, referenced unknown keys) are expanded too, so a
placeholder may be built from another one; uWSGI skips the values of `set-placeholder`.

An unresolved `$(...)` or `%(...)` stays as written, as in uWSGI. Parentheses nest, so
`$(a(b))` is one reference to the name `a(b)`.

uWSGI rescans a value after each replacement, so a replacement may itself hold references.
nsuwsgi does the same, but stops a loop (`a = %(a)`, or an environment variable naming itself)
with an error naming the chain, where uWSGI would spin forever. `%(name)` sees the referenced
value already expanded, whatever the order of the two lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping

from nsuwsgi.config.items import LOADER, Item
from nsuwsgi.config import files
from nsuwsgi.errors import UserError

MAX_DEPTH = 32
OPERATORS = {"+", "-", "*", "/"}
C_INTEGER = re.compile(r"[ \t\n\r\f\v]*([+-]?)0*([0-9]{1,20})([0-9]*)")
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

Resolver = Callable[[str], "str | None"]


class ExpansionLoop(Exception):
    """A replacement keeps producing new references; turned into a UserError by the caller."""


def references(text: str, symbol: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, inside) for each `symbol(...)`, tracking nested parentheses."""
    position = 0
    while True:
        start = text.find(symbol + "(", position)
        if start < 0:
            return
        end = closing_parenthesis(text, start + 2)
        if end < 0:
            return
        yield start, end + 1, text[start + 2:end]
        position = end + 1


def closing_parenthesis(text: str, position: int) -> int:
    depth = 0
    for index in range(position, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return index
            depth -= 1
    return -1


def substitute(text: str, symbol: str, resolve: Resolver, rescan: bool = True,
               depth: int = 0) -> str:
    """Replace every resolvable `symbol(...)`; with `rescan`, expand the replacements too."""
    if depth > MAX_DEPTH:
        raise ExpansionLoop()
    out: list[str] = []
    position = 0
    for start, end, inside in references(text, symbol):
        value = resolve(inside) if inside else None
        if value is None:
            continue
        if rescan:
            value = substitute(value, symbol, resolve, True, depth + 1)
        out.append(text[position:start])
        out.append(value)
        position = end
    out.append(text[position:])
    return "".join(out)


def expand_items(items: list[Item], symbol: str, resolve: Resolver) -> list[Item]:
    """One rescanning pass (`$` or `@`) over every value that may be expanded."""
    result = []
    for item in items:
        if item.kind != LOADER and symbol + "(" in item.value:
            try:
                item = item.replace(value=substitute(item.value, symbol, resolve))
            except ExpansionLoop:
                raise UserError(f"{symbol}(...) expands to itself again and again",
                                origin=item.origin, option=item.key,
                                hint="a variable or file must not name itself") from None
            except UserError as error:
                raise with_origin(error, item) from None
        result.append(item)
    return result


def with_origin(error: UserError, item: Item) -> UserError:
    if error.origin is not None:
        return error
    return UserError(error.message, origin=item.origin, option=item.key, hint=error.hint)


# --------------------------------------------------------------------------- $(...) and @(...)

def environment_resolver(environ: Mapping[str, str]) -> Resolver:
    return environ.get


class FileReader:
    """`@(path)`: a file's text without one trailing newline; each file is read once."""

    def __init__(self, cwd: str):
        self.cwd = cwd
        self.cache: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if "://" in name:
            raise UserError(f"@({name}): config schemes are not supported",
                            hint="save the value to a file and name the file")
        files.check_path(name, None)
        path = os.path.join(self.cwd, name)
        if path not in self.cache:
            self.cache[path] = strip_one_newline(files.read_value(path, name))
        return self.cache[path]


def strip_one_newline(text: str) -> str:
    return text[:-1] if text.endswith(("\n", "\r")) else text


# --------------------------------------------------------------------------- %(...)

class Placeholders:
    """`%(name)`: the first value named `name`, itself fully expanded, looked up lazily."""

    def __init__(self, items: list[Item]):
        self.items = items
        self.first: dict[str, int] = {}
        for index, item in enumerate(items):
            self.first.setdefault(item.key, index)
        self.done: dict[int, str] = {}
        self.active: list[int] = []

    def expand_all(self) -> list[Item]:
        return [item.replace(value=self.value_of(index)) for index, item in enumerate(self.items)]

    def value_of(self, index: int) -> str:
        item = self.items[index]
        if item.kind == LOADER or "%(" not in item.value:
            return item.value
        if index in self.done:
            return self.done[index]
        if index in self.active:
            raise self.loop_error(index)
        self.active.append(index)
        try:
            value = substitute(item.value, "%", self.resolve, rescan=False)
        finally:
            self.active.pop()
        self.done[index] = value
        return value

    def loop_error(self, index: int) -> UserError:
        chain = self.active[self.active.index(index):] + [index]
        names = " -> ".join(f"%({self.items[i].key})" for i in chain)
        item = self.items[chain[0]]
        return UserError(f"placeholder loop: {names}", origin=item.origin, option=item.key,
                         hint="a value cannot refer back to itself")

    def resolve(self, inside: str) -> str | None:
        if " " in inside:
            return evaluate(inside, self.lookup)
        return self.lookup(inside)

    def lookup(self, name: str) -> str | None:
        index = self.first.get(name)
        return None if index is None else self.value_of(index)


def referenced_names(items: list[Item]) -> set[str]:
    """Every name some value refers to with `%(name)` or inside `%(a + b)`."""
    names: set[str] = set()
    for item in items:
        if item.kind == LOADER:
            continue
        for _start, _end, inside in references(item.value, "%"):
            names.update(inside.split(" ") if " " in inside else [inside])
    return names


# --------------------------------------------------------------------------- arithmetic

def evaluate(expression: str, lookup: Resolver) -> str | None:
    """uWSGI's `%(a + 3)` pipeline: left to right, no precedence; None if nothing came out."""
    current: str | None = None
    operator = ""
    for token in expression.split(" "):
        if not token:
            continue
        if token in OPERATORS:
            operator = token
            continue
        if token in ("++", "--"):
            if current is not None:
                current = str(c_integer(current) + (1 if token == "++" else -1))
            operator = ""
            continue
        value = token if token.isascii() and token.isdigit() else (lookup(token) or "")
        current = combine(current, operator, value)
        operator = ""
    return current


def combine(current: str | None, operator: str, value: str) -> str:
    if not operator:
        return (current or "") + value
    left = c_integer(current or "0")
    right = c_integer(value)
    if operator == "+":
        return str(left + right)
    if operator == "-":
        return str(left - right)
    if operator == "*":
        return str(left * right)
    return str(c_division(left, right))


def c_integer(text: str) -> int:
    """strtoll(): the leading integer, or 0; out-of-range values clamp to the 64-bit limits."""
    match = C_INTEGER.match(text)
    if match is None:
        return 0
    sign, digits, more = match.groups()
    value = INT64_MAX + 1 if more else int(digits)
    value = -value if sign == "-" else value
    return max(INT64_MIN, min(INT64_MAX, value))


def c_division(left: int, right: int) -> int:
    """C's integer division (towards zero); uWSGI gives 0 for a division by zero."""
    if right == 0:
        return 0
    quotient = abs(left) // abs(right)
    return quotient if (left < 0) == (right < 0) else -quotient
