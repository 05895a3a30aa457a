"""Benchmark app: the smallest WSGI answer (bench/http_throughput.py)."""

BODY = b"Hello World"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
