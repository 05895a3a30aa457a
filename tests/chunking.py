"""Shared by the parser tests: the request corpora, and feeding bytes in random pieces."""

from __future__ import annotations

import json
import random
from pathlib import Path

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
