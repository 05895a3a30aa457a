"""Magic variables: `%d`, `%n`, `%h`... replaced in a config file's raw text before parsing.

uWSGI replaces every `%<char>` pair while it reads a file, so the variables also work in keys
and section headers, and they describe *that* file (its directory, name, hash...). Existing
deployments depend on the exact values (sockets named `%n.sock`, `%j` hashes), so they are
computed here the way uWSGI 2.0 computes them (core/uwsgi.c:config_magic_table_fill):

  * an unknown letter becomes "" (`%z` -> ""), `%%` is `%`, and `%(` is left alone for the
    later `%(name)` placeholder pass;
  * `%p` is the real path of the file, except when the file itself is a symlink: then it is
    cwd + "/" + the name as given, not resolved;
  * `%j` is the djb33x hash of `%p` printed as uWSGI prints it: the four bytes of the 32-bit
    value in memory (little-endian) order, in uppercase hex; bytes >= 0x80 are sign-extended,
    as C's `char` is on x86;
  * the uppercase forms (`%O %P %S %D %E %N %C %X %I %J`) describe the first file loaded.

One deliberate difference: a `%` right before a line break (or at the very end of the text)
is kept as is. uWSGI would replace `%\\n` by "", silently joining two lines.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import sys
import time

import nsuwsgi

PER_FILE = "opsdencxji0123456789"
FIRST_FILE = {"O": "o", "P": "p", "S": "s", "D": "d", "E": "e", "N": "n", "C": "c", "X": "x",
              "I": "i", "J": "j"}


def djb33x(data: bytes) -> int:
    """uWSGI's djb33x hash: h = h * 33 ^ c, 32-bit, with C's signed char."""
    value = 5381
    for byte in data:
        signed = byte | 0xFFFFFF00 if byte >= 0x80 else byte
        value = (((value << 5) + value) ^ signed) & 0xFFFFFFFF
    return value


def hash_text(path: str) -> str:
    """`%j`: the hash's bytes in memory (little-endian) order, as uwsgi_str_to_hex prints them."""
    return djb33x(os.fsencode(path)).to_bytes(4, "little").hex().upper()


def executable_path() -> str:
    """`%b`: the nsuwsgi program that is running."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else sys.executable
    return os.path.realpath(program)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def startup_vars(cwd: str) -> dict[str, str]:
    """The variables that do not depend on the file, fixed once per load."""
    now = time.time()
    return {
        "v": cwd, "h": socket.gethostname(), "t": str(int(now)), "T": str(int(now * 1_000_000)),
        "V": nsuwsgi.__version__, "k": str(os.cpu_count() or 1), "[": "\x1b",
        "u": str(os.getuid()), "U": user_name(os.getuid()),
        "g": str(os.getgid()), "G": group_name(os.getgid()), "b": executable_path(),
    }


def magic_path(given: str, cwd: str) -> str:
    """`%p`: realpath, except for a symlink, which uWSGI names as cwd + "/" + name."""
    full = given if os.path.isabs(given) else os.path.join(cwd, given)
    if os.path.islink(full):
        return given if os.path.isabs(given) else cwd.rstrip("/") + "/" + given
    return os.path.realpath(full)


def file_vars(given: str, section: str, cwd: str) -> dict[str, str]:
    """The per-file variables for a file named `given` (without its :section)."""
    path = magic_path(given, cwd)
    directory = path[:path.rfind("/") + 1]
    name = path[path.rfind("/") + 1:]
    parts = [p for p in directory.split("/") if p]
    table = {"o": given, "p": path, "s": name, "d": directory, "x": section,
             "c": parts[-1] if parts else "", "j": hash_text(path), "i": inode(path)}
    table["e"], table["n"] = split_extension(name)
    for index in range(10):
        table[str(index)] = parts[index] if index < len(parts) else ""
    return table


def split_extension(name: str) -> tuple[str, str]:
    """(`%e`, `%n`): split at the last dot, as uWSGI does (".hidden" -> ("hidden", ""))."""
    dot = name.rfind(".")
    if dot < 0:
        return "", name
    return name[dot + 1:], name[:dot]


def inode(path: str) -> str:
    try:
        return str(os.lstat(path).st_ino)
    except OSError:
        return ""


def first_file_vars(table: dict[str, str]) -> dict[str, str]:
    """The uppercase copies that keep describing the first file loaded."""
    return {upper: table[lower] for upper, lower in FIRST_FILE.items()}


def substitute(text: str, table: dict[str, str]) -> str:
    """Replace every `%<char>` pair; unknown characters give ""."""
    out: list[str] = []
    i = 0
    while i < len(text):
        percent = text.find("%", i)
        if percent < 0 or percent + 1 >= len(text):
            out.append(text[i:])
            break
        out.append(text[i:percent])
        out.append(replacement(text[percent + 1], table))
        i = percent + 2
    return "".join(out)


def replacement(char: str, table: dict[str, str]) -> str:
    if char == "%":
        return "%"
    if char == "(":
        return "%("
    if char in "\r\n":
        return "%" + char
    return table.get(char, "")
