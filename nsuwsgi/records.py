"""Small record classes for the start path, without `dataclasses`.

Why not dataclasses: importing it imports `inspect` (and with it ast, dis, tokenize), and every
@dataclass builds its methods by exec'ing generated source, ~0.7 ms per class. About twenty
records sit on the path every instance takes from `nsuwsgi ...` to its first answer, so
together they were a large part of a cold start (issue 4, docs/architecture.md).

A record is a class with `__slots__` (the field names, in order) and an explicit `__init__`
whose parameters are those names. This base gives it what dataclasses gave us: equality over
the fields (minus those named in `_not_compared`), a readable repr, and `replace()`, which
calls `__init__` with every field and the changes. `Frozen` records also refuse attribute
assignment after `__init__` (which sets fields with `object.__setattr__`) and hash like the
tuple of their compared fields.
"""

from __future__ import annotations

set_field = object.__setattr__      # how a Frozen record's __init__ sets its fields


class Record:
    """Equality, repr and replace() from `__slots__`; attributes stay assignable."""

    __slots__ = ()
    _not_compared: tuple[str, ...] = ()     # fields left out of == and hash (callables, origins)

    def _compared_values(self) -> tuple:
        skip = self._not_compared
        return tuple(getattr(self, name) for name in self.__slots__ if name not in skip)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared_values() == other._compared_values()

    __hash__ = None     # mutable: unhashable, like a plain @dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes):
        """A copy with some fields changed (dataclasses.replace)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return type(self)(**values)


class Frozen(Record):
    """A Record whose fields cannot be assigned after __init__; hashable."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable: use .replace({name}=...)")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __hash__(self) -> int:
        return hash(self._compared_values())
