"""Shared by the parser tests: the request corpora, feeding bytes in random pieces, and
collecting what a sans-I/O parser makes of them."""

from __future__ import annotations

import json
import random
from pathlib import Path

from nsuwsgi.server.events import BadRequest, Body

CORPUS_ROOT = Path(__file__).resolve().parent / "corpus"


def load_corpus(name: str) -> tuple[Path, dict, list[str], list[str]]:
    """(directory, expected.json, sorted valid names, sorted invalid names) of one corpus."""
    directory = CORPUS_ROOT / name
    expected = json.loads((directory / "expected.json").read_text())
    return directory, expected, sorted(expected["valid"]), sorted(expected["invalid"])


def random_split(data: bytes, rnd: random.Random, max_piece: int = 17) -> list[bytes]:
    pieces, i = [], 0
    while i < len(data):
        k = rnd.randint(1, max_piece)
        pieces.append(data[i:i + k])
        i += k
    return pieces


def feed_all(parser, pieces) -> tuple[list, tuple[int, str] | None]:
    """Feed every piece to parser: -> (events, (status, reason) or None). The events a
    BadRequest carries (those made before the error) are kept."""
    events: list = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
    except BadRequest as e:
        return events + e.events, (e.status, e.reason)
    return events, None


def merge_bodies(events: list) -> list:
    """events with each run of Body events joined into one, so chunkings compare equal."""
    out: list = []
    for e in events:
        if type(e) is Body and out and type(out[-1]) is Body:
            out[-1] = Body(out[-1].data + e.data)
        else:
            out.append(e)
    return out
