"""Benchmark app: "Hello " + $GREETING, read at every request (bench/emperor.py).

The Emperor bench reloads a vassal by rewriting its file with another `env = GREETING=...`
line, and tells the reloaded vassal's answers from the old one's by this body.
"""

import os

HEADERS = [("Content-Type", "text/plain")]


def application(environ, start_response):
    body = ("Hello " + os.environ.get("GREETING", "unset")).encode()
    start_response("200 OK", HEADERS + [("Content-Length", str(len(body)))])
    return [body]
