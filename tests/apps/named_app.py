"""An app whose callable is `app` (Flask style), to test `callable` and its hint."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"named"]


not_callable = 42
