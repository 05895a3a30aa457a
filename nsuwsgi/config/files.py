"""Reading config files and @(file) values: every failure becomes a UserError naming the path.

open() can fail in more ways than OSError (a NUL byte or an unencodable character in the name
raises ValueError), and a file may not be UTF-8; none of that may reach the user as a traceback.
Relative paths are joined to the startup directory by the callers, as uWSGI opens them.
"""

from __future__ import annotations

import os

from nsuwsgi.errors import Origin, UserError


def check_path(path: str, origin: Origin | None) -> None:
    """A NUL byte or an unencodable character would make open() raise ValueError."""
    try:
        valid = b"\0" not in os.fsencode(path)
    except UnicodeEncodeError:
        valid = False
    if not valid:
        raise UserError(f"{path!r} is not a valid file name", origin=origin,
                        hint="remove the NUL byte or the invalid character")


def read_config(path: str, origin: Origin) -> str:
    """A config file's text; a UTF-8 byte order mark is dropped."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}", origin=origin,
                        hint=read_hint(error)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(f"byte 0x{data[error.start]:02x} is not UTF-8",
                        origin=Origin(file=path, line=line),
                        hint="save the file as UTF-8") from None


def read_hint(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return ("check the path; relative paths start in the directory nsuwsgi was started "
                "in, use %d for the directory of the including file")
    if isinstance(error, IsADirectoryError):
        return "name a config file, not a directory"
    return "check the file's permissions"


def read_value(path: str, name: str) -> str:
    """The text of a file named by @(name)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise UserError(f"cannot read {path} for @({name}): {error.strerror}",
                        hint="check the path; relative paths start in the directory "
                        "nsuwsgi was started in") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} (read for @({name})) is not UTF-8 text",
                        hint="save the file as UTF-8") from None
