"""The prefork WSGI server: a vassal serves its tenant's app itself.

Layout, with the contracts the modules keep between them:

  http.py      sans-I/O HTTP/1.x request parser (httptools). `HttpParser(limits)`:
               `feed(data: bytes) -> list[event]`; events are `Head(method, target, version,
               headers: list[tuple[bytes, bytes]], keep_alive: bool, chunked: bool,
               content_length: int | None)`, `Body(data: bytes)`, `End()`; malformed input
               raises `BadRequest(status, reason)` (400, 413, 431...). After End, feeding the
               next request on the same connection works (keep-alive); pipelined bytes are
               kept.
  uwsgi.py     sans-I/O uwsgi binary protocol parser: `UwsgiParser(limits)`, same
               `feed -> events` contract: `Head` carries `vars: dict[str, str]` (the packet's
               key/values) instead of method/target/headers; then `Body`/`End` by
               CONTENT_LENGTH. Modifier1 other than 0 -> BadRequest.
  wsgi.py      environ building (PEP 3333) from a Head + socket facts, app loading
               (wsgi-file, module, callable, mount, manage-script-name), start_response and
               response serialisation (`Response` with HTTP/1.1 framing: Content-Length or
               chunked, keep-alive, a correct Connection header), wsgi.file_wrapper with
               sendfile, static-map.
  cgi.py       CGI/1.1 runner for `cgi =` (plugins = 0:cgi).
  sockets.py   socket specs (`socket`, `http-socket`, `protocol`, unix, @abstract, TCP v4/v6,
               chmod-socket, chown-socket, listen, LISTEN_FDS), bound before any jail.
  worker.py    the worker: accept, parse, call the app, write, keep-alive; max-requests,
               harakiri, graceful stop; reports per-request facts for stats.

Limits: `Limits(buffer_size=4096, max_body=None)`; buffer-size bounds the request head
(uWSGI's option, default 4096 bytes).
"""
