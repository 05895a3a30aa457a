"""The hello-world app of uWSGI's t/runner (and of the benchmarks)."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World"]
