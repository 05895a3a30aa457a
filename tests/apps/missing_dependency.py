"""An app that imports a package nobody installed."""

import nsuwsgi_no_such_dependency  # noqa: F401


def application(environ, start_response):
    raise AssertionError("never loaded")
