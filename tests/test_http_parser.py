"""The sans-I/O HTTP/1.x request parser (nsuwsgi.server.http).

The corpus (tests/corpus/http, made by tests/corpus/build_corpus.py, expectations written by
hand in expected.json) is replayed in many chunkings: whole, byte by byte, seeded random
splits, at and inside CRLFs, and every two-piece split. Each must give the same events
(Body pieces merged) and the same error. Hypothesis then feeds random and mutated input:
only events or BadRequest may come out, never another exception, and the result never
depends on the chunking.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunking import feed_all, load_corpus, merge_bodies, random_split
from nsuwsgi.server.events import END, BadRequest, Body, End, Head, Limits
from nsuwsgi.server.http import HttpParser

CORPUS, EXPECTED, VALID, INVALID = load_corpus("http")


# ---- helpers

def split_at(data: bytes, cuts) -> list[bytes]:
    cuts = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def crlf_positions(data: bytes, offset: int) -> list[int]:
    out, i = [], data.find(b"\r\n")
    while i >= 0:
        out.append(i + offset)
        i = data.find(b"\r\n", i + 1)
    return out


def chunkings(data: bytes, every_two_way: bool = True):
    yield "whole", [data]
    yield "bytewise", [data[i:i + 1] for i in range(len(data))]
    for seed in (1, 2, 3, 4):
        yield f"random-{seed}", random_split(data, random.Random(seed))
    yield "random-large", random_split(data, random.Random(5), 200)
    yield "after-crlf", split_at(data, crlf_positions(data, 2))
    yield "inside-crlf", split_at(data, crlf_positions(data, 1))
    yield "before-crlf", split_at(data, crlf_positions(data, 0))
    if every_two_way:
        for i in range(1, len(data)):
            yield f"two-way-{i}", [data[:i], data[i:]]


def parse(pieces, limits: Limits | None = None):
    """-> (events with Body merged, (status, reason) or None, parser)."""
    p = HttpParser(limits)
    events, err = feed_all(p, pieces)
    check_grammar(events)
    return merge_bodies(events), err, p


def check_grammar(events: list):
    """Events come as (Head Body* End)* (Head Body*)?, Body never empty, nothing after an End
    that closed the connection."""
    state = "idle"
    keep_alive = True
    for e in events:
        assert state != "closed", f"event after a closing End: {e}"
        if type(e) is Head:
            assert state == "idle", events
            state, keep_alive = "in", e.keep_alive
        elif type(e) is Body:
            assert state == "in" and e.data and type(e.data) is bytes, events
        else:
            assert type(e) is End and state == "in", events
            state = "idle" if keep_alive else "closed"


def limits_of(record) -> Limits | None:
    return Limits(**record["limits"]) if "limits" in record else None


def events_of(requests) -> list:
    out: list = []
    for r in requests:
        out.append(Head(r["method"], r["target"].encode("latin-1"), r["version"],
                        [(n.encode("latin-1"), v.encode("latin-1")) for n, v in r["headers"]],
                        r["keep_alive"], r["chunked"], r["content_length"],
                        r["expect_continue"]))
        if r["body"]:
            out.append(Body(r["body"].encode("latin-1")))
        out.append(END)
    return out


# ---- the corpus

@pytest.mark.parametrize("name", VALID)
def test_valid_corpus(name):
    record = EXPECTED["valid"][name]
    data = (CORPUS / "valid" / name).read_bytes()
    want = events_of(record["requests"])
    for how, pieces in chunkings(data):
        events, err, _ = parse(pieces, limits_of(record))
        assert err is None, (how, err)
        assert events == want, how


@pytest.mark.parametrize("name", INVALID)
def test_invalid_corpus(name):
    record = EXPECTED["invalid"][name]
    data = (CORPUS / "invalid" / name).read_bytes()
    events, err, _ = parse([data], limits_of(record))
    assert err is not None and err[0] == record["status"], err
    assert sum(e is END for e in events) == record["complete"], events
    for how, pieces in chunkings(data):
        assert parse(pieces, limits_of(record))[:2] == (events, err), how


def test_corpus_is_raw_bytes():
    for name in VALID:
        data = (CORPUS / "valid" / name).read_bytes()
        assert b"\r\n" in data and b"\r\r\n" not in data, name


# ---- the contract

def test_head_fields_in_contract_order():
    head = Head("GET", b"/", "HTTP/1.1", [(b"Host", b"a")], True, False, None)
    assert (head.method, head.target, head.version, head.headers, head.keep_alive,
            head.chunked, head.content_length, head.expect_continue, head.vars) == (
        "GET", b"/", "HTTP/1.1", [(b"Host", b"a")], True, False, None, False, None)
    assert End() == END


def test_feed_returns_events_of_that_call():
    p = HttpParser()
    assert p.feed(b"") == []
    assert p.feed(b"GET / HTTP/1.1\r\nHo") == []
    assert p.feed(b"st: a\r\n") == []
    events = p.feed(b"\r\n")
    assert events == [Head("GET", b"/", "HTTP/1.1", [(b"Host", b"a")], True, False, None),
                      END]


def test_pipelined_requests_come_in_one_list():
    data = (b"GET /1 HTTP/1.1\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
            b"GET /3 HTTP/1.1\r\n\r\nGET /4 HTTP/1.1\r\nHo")
    p = HttpParser()
    events = p.feed(data)
    assert [type(e).__name__ for e in events] == [
        "Head", "End", "Head", "Body", "End", "Head", "End"]
    assert [e.target for e in events if type(e) is Head] == [b"/1", b"/2", b"/3"]
    assert not p.idle
    assert p.feed(b"st: x\r\n\r\n")[0].target == b"/4"
    assert p.idle


def test_keep_alive_stream_reuses_one_parser():
    p = HttpParser()
    llhttp = p._p
    for i in range(200):
        body = b"x" * (i % 7)
        req = b"POST /%d HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (i, len(body), body)
        events = merge_bodies(p.feed(req))
        assert events[0].target == b"/%d" % i and events[-1] is END
        assert (events[1].data if body else b"") == body
        assert p.idle and not p.closed
    assert p._p is llhttp


@pytest.mark.parametrize("version, connection, keep_alive", [
    (b"1.1", None, True),
    (b"1.1", b"close", False),
    (b"1.1", b"Close", False),
    (b"1.1", b"keep-alive", True),
    (b"1.1", b"keep-alive, close", False),
    (b"1.1", b"Upgrade", True),  # Connection: upgrade without an Upgrade field: plain
    (b"1.0", None, False),
    (b"1.0", b"keep-alive", True),
    (b"1.0", b"Keep-Alive", True),
    (b"1.0", b"close", False),
])
def test_keep_alive_rules(version, connection, keep_alive):
    req = b"GET / HTTP/" + version + b"\r\n"
    if connection is not None:
        req += b"Connection: " + connection + b"\r\n"
    p = HttpParser()
    events = p.feed(req + b"\r\n")
    assert events[0].keep_alive is keep_alive and events[-1] is END
    assert p.closed is not keep_alive


def test_after_a_closing_end_bytes_are_ignored():
    p = HttpParser()
    assert len(p.feed(b"GET / HTTP/1.0\r\n\r\nGET /x HTTP/1.0\r\n\r\n")) == 2
    assert p.closed
    assert p.feed(b"GET /y HTTP/1.1\r\n\r\n") == []
    assert p.feed(b"garbage that would be a 400") == []


def test_upgrade_is_a_plain_request_that_closes():
    p = HttpParser()
    events = p.feed(b"GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    b"\x81\x05hello")
    assert [type(e) for e in events] == [Head, End]
    assert events[0].keep_alive is False and p.closed


def test_bad_request_is_sticky_and_keeps_earlier_events():
    p = HttpParser()
    with pytest.raises(BadRequest) as info:
        p.feed(b"GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\r\nA : b\r\n\r\n")
    assert info.value.status == 400
    assert [type(e) for e in info.value.events] == [Head, End]
    assert info.value.events[0].target == b"/ok"
    assert p.closed
    with pytest.raises(BadRequest) as again:
        p.feed(b"GET / HTTP/1.1\r\n\r\n")
    assert again.value is info.value and again.value.events == []


def test_expect_continue_head_comes_before_the_body():
    p = HttpParser()
    events = p.feed(b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert len(events) == 1 and events[0].expect_continue and events[0].content_length == 3
    assert p.feed(b"abc") == [Body(b"abc"), END]


def test_other_expectations_are_not_100_continue():
    p = HttpParser()
    head = p.feed(b"GET / HTTP/1.1\r\nExpect: something\r\n\r\n")[0]
    assert head.expect_continue is False


def test_header_names_raw_values_stripped_trailers_dropped():
    p = HttpParser()
    events = p.feed(b"POST / HTTP/1.1\r\nx-MiXeD:  v a l  \r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n1\r\nz\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert events[0].headers == [(b"x-MiXeD", b"v a l"), (b"Transfer-Encoding", b"chunked")]
    assert events[1:] == [Body(b"z"), END]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_like(kind):
    p = HttpParser()
    events = p.feed(kind(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"))
    assert events[1] == Body(b"hi") and type(events[1].data) is bytes


def test_large_content_length_body_streams():
    body = bytes(range(256)) * 4096  # 1 MiB
    p = HttpParser()
    events = p.feed(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body))
    assert events[0].content_length == len(body)
    got = []
    for i in range(0, len(body), 65536):
        events = p.feed(body[i:i + 65536])
        got += events
    assert got[-1] is END and b"".join(e.data for e in got[:-1]) == body


def test_many_small_chunks():
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"a", b"bc", b"\r\n\r\n") * 300)
    p = HttpParser()
    events = merge_bodies(p.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body
                          + b"0\r\n\r\nGET /after HTTP/1.1\r\n\r\n"))
    assert events[1] == Body(b"abc\r\n\r\n" * 300) and events[2] is END
    assert events[3].target == b"/after"


# ---- limits

def head_of_size(size: int, target: bytes = b"/") -> bytes:
    base = b"GET " + target + b" HTTP/1.1\r\nX: \r\n\r\n"
    assert size >= len(base)
    return base[:-4] + b"p" * (size - len(base)) + b"\r\n\r\n"


@pytest.mark.parametrize("limit", [32, 64, 100, 4096])
def test_head_limit_is_inclusive(limit):
    ok = head_of_size(limit)
    for _, pieces in chunkings(ok, every_two_way=False):
        events, err, _ = parse(pieces, Limits(buffer_size=limit))
        assert err is None and len(ok) == limit
    over = head_of_size(limit + 1)
    for _, pieces in chunkings(over, every_two_way=False):
        _, err, _ = parse(pieces, Limits(buffer_size=limit))
        assert err[0] == 431


def test_default_limit_is_uwsgis_4096():
    assert HttpParser().limits.buffer_size == 4096
    assert parse([head_of_size(4096)])[1] is None
    assert parse([head_of_size(4097)])[1][0] == 431


def test_long_target_is_414():
    for size in (4097, 5000, 100000):
        data = b"GET /" + b"a" * size + b" HTTP/1.1\r\n\r\n"
        _, err, _ = parse([data])
        assert err[0] == 414
        _, err, _ = parse(random_split(data, random.Random(size), 3000))
        assert err[0] == 414


def test_head_limit_counts_each_request_afresh():
    req = head_of_size(64)
    p = HttpParser(Limits(buffer_size=64))
    events = p.feed(req * 50)
    assert sum(e is END for e in events) == 50


def test_head_limit_applies_to_pipelined_requests_in_one_feed():
    p = HttpParser(Limits(buffer_size=64))
    with pytest.raises(BadRequest) as info:
        p.feed(head_of_size(64) + head_of_size(65))
    assert info.value.status == 431 and info.value.events[-1] is END


def test_endless_head_is_cut_at_the_limit():
    p = HttpParser()
    p.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(BadRequest) as info:
        for _ in range(1000):
            p.feed(b"X-Flood: " + b"y" * 100 + b"\r\n")
    assert info.value.status == 431


def test_max_body_content_length():
    p = HttpParser(Limits(max_body=10))
    with pytest.raises(BadRequest) as info:
        p.feed(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    assert info.value.status == 413 and info.value.events == []


def test_max_body_chunked_delivers_exactly_the_limit_then_413():
    data = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
    for how, pieces in chunkings(data):
        events, err, _ = parse(pieces, Limits(max_body=8))
        assert err[0] == 413, how
        assert events[1:] == [Body(b"abcdefgh")], how


def test_limits_validate():
    with pytest.raises(ValueError):
        Limits(buffer_size=0)
    with pytest.raises(ValueError):
        Limits(max_body=-1)


# ---- properties (hypothesis)

FRAGMENTS = [b"GET ", b"POST ", b"/", b"/a?b=c", b" HTTP/1.1", b" HTTP/1.0", b"\r\n", b"\r",
             b"\n", b" ", b"\t", b":", b";", b"=", b",", b"0", b"5", b"a", b"F", b"x",
             b"Host: a", b"Content-Length: ", b"Content-Length: 3", b"Transfer-Encoding: ",
             b"chunked", b"Connection: ", b"close", b"keep-alive", b"Upgrade: x",
             b"Expect: 100-continue", b"\r\n\r\n", b"0\r\n\r\n", b"\x00", b"\xff", b'"']
PREFIXES = [b"", b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 2\r\n\r\n"]
LIMITS = [None, Limits(buffer_size=48), Limits(buffer_size=96, max_body=6)]

http_soup = st.builds(lambda prefix, parts: prefix + b"".join(parts),
                      st.sampled_from(PREFIXES),
                      st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=4)),
                               max_size=40))
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def assert_chunking_independent(data: bytes, seed: int, limits):
    whole = parse([data], limits)[:2]
    assert parse(random_split(data, random.Random(seed), 9), limits)[:2] == whole
    assert parse([data[i:i + 1] for i in range(len(data))], limits)[:2] == whole


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 2**16), st.sampled_from(LIMITS))
def test_fuzz_random_bytes(data, seed, limits):
    assert_chunking_independent(data, seed, limits)


@FUZZ
@given(http_soup, st.integers(0, 2**16), st.sampled_from(LIMITS))
def test_fuzz_http_soup(data, seed, limits):
    assert_chunking_independent(data, seed, limits)


mutation = st.tuples(st.sampled_from(["insert", "delete", "replace", "duplicate"]),
                     st.floats(0, 1), st.integers(1, 8),
                     st.one_of(st.sampled_from(FRAGMENTS), st.binary(min_size=1, max_size=3)))


def mutate(data: bytes, mutations) -> bytes:
    for op, where, length, blob in mutations:
        i = int(where * len(data))
        if op == "insert":
            data = data[:i] + blob + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + length:]
        elif op == "replace":
            data = data[:i] + blob + data[i + len(blob):]
        else:
            data = data[:i] + data[i:i + length] + data[i:]
    return data


CORPUS_FILES = [(CORPUS / "valid" / n).read_bytes() for n in VALID] + \
               [(CORPUS / "invalid" / n).read_bytes() for n in INVALID]


@FUZZ
@given(st.sampled_from(CORPUS_FILES), st.lists(mutation, min_size=1, max_size=4),
       st.integers(0, 2**16), st.sampled_from(LIMITS))
def test_fuzz_mutated_corpus(data, mutations, seed, limits):
    assert_chunking_independent(mutate(data, mutations), seed, limits)


# generated well-formed requests: what goes in comes out
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
token = st.text(TCHAR, min_size=1, max_size=12).map(str.encode)
field_value = st.binary(max_size=20).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c != 127).strip(b" \t"))
target = st.text("abcxyz019/%-._~?=&+", min_size=0, max_size=30).map(lambda t: b"/" + t.encode())
RESERVED = {b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade",
            b"proxy-connection", b"keep-alive"}


@st.composite
def request(draw, last: bool):
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    headers = [(n, v) for n, v in draw(st.lists(st.tuples(token, field_value), max_size=5))
               if n.lower() not in RESERVED]
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = draw(st.binary(max_size=60)) if framing != "none" else b""
    close = last and draw(st.booleans())
    wire_body = b""
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
        wire_body = body
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        i = 0
        while i < len(body):
            k = draw(st.integers(1, 16))
            ext = draw(st.sampled_from([b"", b";a", b";a=b", b';q="x y"']))
            wire_body += b"%x%s\r\n%s\r\n" % (len(body[i:i + k]), ext, body[i:i + k])
            i += k
        trailers = draw(st.lists(st.tuples(token, field_value), max_size=2))
        wire_body += b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in trailers
                                         if n.lower() not in RESERVED) + b"\r\n"
    if close:
        headers.append((b"Connection", b"close"))
    tgt = draw(target)
    wire = (method.encode() + b" " + tgt + b" HTTP/1.1\r\n"
            + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n" + wire_body)
    events = [Head(method, tgt, "HTTP/1.1", headers, not close, framing == "chunked",
                   len(body) if framing == "length" else None)]
    if body:
        events.append(Body(body))
    events.append(END)
    return wire, events


@st.composite
def request_stream(draw):
    n = draw(st.integers(1, 4))
    reqs = [draw(request(i == n - 1)) for i in range(n)]
    return b"".join(w for w, _ in reqs), [e for _, es in reqs for e in es]


@FUZZ
@given(request_stream(), st.integers(0, 2**16))
def test_generated_requests_round_trip(stream, seed):
    wire, want = stream
    for pieces in ([wire], random_split(wire, random.Random(seed), 11)):
        events, err, _ = parse(pieces)
        assert err is None and events == want
