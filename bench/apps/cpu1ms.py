"""Benchmark app: about 1 ms of pure-Python CPU work per request (bench/http_throughput.py).

The loop count comes from BENCH_SPIN_ITERATIONS, which the bench calibrates once at start
(with this very `spin`, in its own process, on the venv's CPython) and passes to every server
it starts, so all of them run the same code for the same number of iterations.

GET /spin-time answers how long one spin() takes inside this server's interpreter (the
minimum of 20 runs, in microseconds of thread CPU time): uWSGI embeds libpython3.11.so while
the venv runs /usr/bin/python3.11, and the bench prints both so a difference in the
interpreter build is not mistaken for a difference in the server.
"""

import os
import time

ITERATIONS = int(os.environ.get("BENCH_SPIN_ITERATIONS", "20000"))
HEADERS = [("Content-Type", "text/plain")]


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def spin_time_us(runs=20):
    best = None
    for _ in range(runs):
        start = time.thread_time_ns()
        spin(ITERATIONS)
        took = time.thread_time_ns() - start
        best = took if best is None or took < best else best
    return best / 1000.0


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/spin-time":
        body = b"%.1f\n" % spin_time_us()
    else:
        body = b"%d\n" % spin(ITERATIONS)
    start_response("200 OK", HEADERS + [("Content-Length", str(len(body)))])
    return [body]
