"""A package module for `module = nsuwsgi_testpkg.wsgi[:callable]`."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"module default"]


def api(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"module api"]
