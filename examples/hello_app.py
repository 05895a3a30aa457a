"""The demo tenant's app: says where it runs (inside a jail it sees its own hostname and pids)."""

import os


def application(environ, start_response):
    body = (f"Hello from {os.uname().nodename}: worker pid {os.getpid()}, uid {os.getuid()}, "
            f"{len([p for p in os.listdir('/proc') if p.isdigit()])} processes visible\n")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]
