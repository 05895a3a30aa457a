"""Benchmark app: about 1 ms of pure-Python CPU work per request (bench/http_throughput.py).

The loop count comes from BENCH_SPIN_ITERATIONS, which the bench calibrates once (with this
very function, in its own process, on the same CPython) and passes to every server it starts,
so all three run exactly the same code for the same number of iterations.
"""

import os

ITERATIONS = int(os.environ.get("BENCH_SPIN_ITERATIONS", "20000"))
HEADERS = [("Content-Type", "text/plain")]


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def application(environ, start_response):
    body = b"%d\n" % spin(ITERATIONS)
    start_response("200 OK", HEADERS + [("Content-Length", str(len(body)))])
    return [body]
