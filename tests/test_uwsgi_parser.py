"""The sans-I/O uwsgi protocol parser (nsuwsgi.server.uwsgi).

Corpus: tests/corpus/uwsgi (nginx-shaped packets from tests/corpus/build_corpus.py, with
hand-written expectations), replayed in many chunkings; then round trips through
encode_uwsgi_vars, every truncation of a request, bogus sizes and random bytes: only events
or BadRequest, and never a result that depends on the chunking.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunking import feed_all, load_corpus, merge_bodies, random_split
from nsuwsgi.server.events import END, BadRequest, Body, End, Head, Limits
from nsuwsgi.server.uwsgi import UwsgiParser, encode_uwsgi_vars, parse_uwsgi_vars

CORPUS, EXPECTED, VALID, INVALID = load_corpus("uwsgi")


def chunkings(data: bytes):
    yield "whole", [data]
    yield "bytewise", [data[i:i + 1] for i in range(len(data))]
    for seed in (1, 2, 3):
        yield f"random-{seed}", random_split(data, random.Random(seed))
    for i in (1, 2, 3, 4, 5):
        yield f"two-way-{i}", [data[:i], data[i:]]
    for i in range(5, len(data), max(1, len(data) // 40)):
        yield f"two-way-{i}", [data[:i], data[i:]]


def parse(pieces, limits: Limits | None = None):
    """-> (events with Body merged, (status, reason) or None, parser)."""
    p = UwsgiParser(limits)
    events, err = feed_all(p, pieces)
    merged = merge_bodies(events)
    # Head, Body*, End at most once; nothing empty
    kinds = [type(e) for e in merged]
    assert kinds in ([], [Head], [Head, Body], [Head, End], [Head, Body, End]), kinds
    assert all(e.data for e in merged if type(e) is Body)
    return merged, err, p


def request(vars: dict, body: bytes = b"") -> bytes:
    vars = dict(vars)
    if body:
        vars["CONTENT_LENGTH"] = str(len(body))
    return encode_uwsgi_vars(vars) + body


# ---- corpus

@pytest.mark.parametrize("name", VALID)
def test_valid_corpus(name):
    record = EXPECTED["valid"][name]
    data = (CORPUS / "valid" / name).read_bytes()
    body = record["body"].encode("latin-1")
    for how, pieces in chunkings(data):
        events, err, p = parse(pieces)
        assert err is None, (how, err)
        assert events[0].vars == record["vars"], how
        assert events[1:] == ([Body(body)] if body else []) + [END], how
        assert p.closed


@pytest.mark.parametrize("name", INVALID)
def test_invalid_corpus(name):
    data = (CORPUS / "invalid" / name).read_bytes()
    events, err, _ = parse([data])
    assert err is not None and err[0] == EXPECTED["invalid"][name]["status"]
    assert events == []
    for how, pieces in chunkings(data):
        assert parse(pieces)[:2] == (events, err), how


def test_nginx_post_head():
    events, _, _ = parse([(CORPUS / "valid" / "nginx_post.bin").read_bytes()])
    head = events[0]
    assert (head.method, head.target, head.version) == ("POST", b"/api", "HTTP/1.1")
    assert head.content_length == len(events[1].data)
    assert (head.keep_alive, head.chunked, head.headers, head.expect_continue) == (
        False, False, [], False)
    assert head.vars["PATH_INFO"] == "/api" and head.vars["QUERY_STRING"] == ""


# ---- the contract

def test_one_request_per_connection():
    p = UwsgiParser()
    assert p.idle and not p.closed
    data = request({"REQUEST_METHOD": "GET", "PATH_INFO": "/"})
    events = p.feed(data + data)  # a second request on the connection is ignored
    assert [type(e) for e in events] == [Head, End] and events[0].keep_alive is False
    assert p.closed and not p.idle
    assert p.feed(data) == []


def test_body_streams_in_pieces():
    body = bytes(range(256)) * 1000
    p = UwsgiParser()
    got = p.feed(request({"PATH_INFO": "/"}, body)[:-len(body)])
    assert [type(e) for e in got] == [Head] and got[0].content_length == len(body)
    for i in range(0, len(body), 4096):
        got += p.feed(memoryview(body)[i:i + 4096])
    assert got[-1] is END and b"".join(e.data for e in got[1:-1]) == body
    assert all(type(e.data) is bytes for e in got[1:-1])


@pytest.mark.parametrize("value, length", [(None, 0), ("", 0), ("0", 0), ("7", 7),
                                           ("007", 7)])
def test_content_length(value, length):
    vars = {"A": "b"} if value is None else {"CONTENT_LENGTH": value}
    p = UwsgiParser()
    events = p.feed(encode_uwsgi_vars(vars) + b"x" * length + b"extra")
    assert events[0].content_length == length
    assert events[1:] == ([Body(b"x" * length)] if length else []) + [END]


@pytest.mark.parametrize("value", ["abc", "-1", "+1", " 1", "1 ", "1.0", "0x10", "\xb2",
                                   "1e3", "1_000"])
def test_invalid_content_length(value):
    with pytest.raises(BadRequest) as info:
        UwsgiParser().feed(encode_uwsgi_vars({"CONTENT_LENGTH": value}))
    assert info.value.status == 400 and "CONTENT_LENGTH" in info.value.reason


def test_max_body():
    limits = Limits(max_body=10)
    assert parse([request({}, b"x" * 10)], limits)[1] is None
    events, err, _ = parse([request({}, b"x" * 11)], limits)
    assert err[0] == 413 and events == []


@pytest.mark.parametrize("modifier1", [1, 5, 9, 30, 255])
def test_modifier1_other_than_0(modifier1):
    with pytest.raises(BadRequest) as info:
        UwsgiParser().feed(encode_uwsgi_vars({"A": "b"}, modifier1=modifier1))
    assert (info.value.status, info.value.reason) == (400, f"unsupported modifier1 {modifier1}")


def test_modifier2_is_ignored():
    events = UwsgiParser().feed(encode_uwsgi_vars({"A": "b"}, modifier2=7))
    assert events[0].vars == {"A": "b"}


def test_block_size_limit_is_inclusive():
    for limit in (16, 100, 4096):
        exact = encode_uwsgi_vars({"K": "v" * (limit - 5)})
        assert len(exact) - 4 == limit
        assert parse([exact], Limits(buffer_size=limit))[1] is None
        over = encode_uwsgi_vars({"K": "v" * (limit - 4)})
        for pieces in ([over], [over[:4]], [over[i:i + 1] for i in range(len(over))]):
            _, err, _ = parse(pieces, Limits(buffer_size=limit))
            assert err == (400, f"invalid request block size: {limit + 1} (max {limit})...skip")


def test_block_size_is_checked_before_the_block_arrives():
    p = UwsgiParser()
    with pytest.raises(BadRequest):
        p.feed(struct.pack("<BHB", 0, 65535, 0))
    assert p.closed


def test_error_is_sticky():
    p = UwsgiParser()
    with pytest.raises(BadRequest) as info:
        p.feed(b"\x05\x00\x00\x00")
    with pytest.raises(BadRequest) as again:
        p.feed(b"\x00\x00\x00\x00")
    assert again.value is info.value


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_like(kind):
    events = UwsgiParser().feed(kind(request({"A": "b"}, b"hi")))
    assert events[1] == Body(b"hi") and type(events[1].data) is bytes


# ---- truncations and bogus sizes

def test_every_truncation_waits_without_error():
    body = b"0123456789"
    data = request({"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "E": ""}, body)
    packet = len(data) - len(body)
    for cut in range(len(data)):
        events, err, p = parse([data[:cut]])
        assert err is None
        if cut < packet:
            assert events == [] and p.idle == (cut == 0)
        else:
            assert type(events[0]) is Head and END not in events
            assert b"".join(e.data for e in events[1:]) == body[:cut - packet]
        rest = p.feed(data[cut:])  # and the rest completes it
        assert rest[-1] is END and p.closed


def test_truncated_vars_inside_a_complete_block():
    good = encode_uwsgi_vars({"KEY": "value", "K2": "v2"})
    block = good[4:]
    for cut in range(len(block)):
        items = block[:cut]
        data = struct.pack("<BHB", 0, len(items), 0) + items
        try:
            events = UwsgiParser().feed(data)
        except BadRequest as e:
            assert e.status == 400 and "invalid uwsgi vars" in e.reason
        else:  # cut exactly between items
            assert cut in (0, 12) and type(events[0]) is Head


@pytest.mark.parametrize("block", [
    b"\x05\x00ab",                       # key length past the end
    b"\x01\x00k",                        # no value length
    b"\x01\x00k\x01",                    # half a value length
    b"\x01\x00k\x05\x00ab",              # value length past the end
    b"\x01\x00k\x01\x00v\x00",           # a stray byte after the last item
    b"\xff\xff",                         # a key of 65535 bytes in a 2-byte block
])
def test_bogus_lengths(block):
    with pytest.raises(BadRequest) as info:
        UwsgiParser().feed(struct.pack("<BHB", 0, len(block), 0) + block)
    assert info.value.status == 400


def test_parse_vars_helper():
    assert parse_uwsgi_vars(b"") == {}
    assert parse_uwsgi_vars(encode_uwsgi_vars([("A", "1"), ("A", "2")])[4:]) == {"A": "2"}
    with pytest.raises(BadRequest):
        parse_uwsgi_vars(b"\x00")


def test_encode_checks():
    assert encode_uwsgi_vars({}) == b"\x00\x00\x00\x00"
    assert encode_uwsgi_vars([(b"K", b"\xff")]) == b"\x00\x06\x00\x00\x01\x00K\x01\x00\xff"
    assert encode_uwsgi_vars({"K": "v"}, 9, 3)[:4] == b"\x09\x06\x00\x03"
    with pytest.raises(ValueError):
        encode_uwsgi_vars({"K": "v" * 65536})
    with pytest.raises(ValueError):
        encode_uwsgi_vars({f"K{i}": "v" * 60000 for i in range(2)})
    with pytest.raises(ValueError):
        encode_uwsgi_vars({}, modifier1=256)
    with pytest.raises(UnicodeEncodeError):
        encode_uwsgi_vars({"K": "\u20ac"})


# ---- properties (hypothesis)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)


@FUZZ
@given(st.dictionaries(latin1, latin1, max_size=12), st.binary(max_size=200),
       st.integers(0, 2**16))
def test_round_trip(vars, body, seed):
    vars.pop("CONTENT_LENGTH", None)
    data = request(vars, body)
    want_vars = dict(vars, **({"CONTENT_LENGTH": str(len(body))} if body else {}))
    for pieces in ([data], random_split(data, random.Random(seed), 13)):
        events, err, p = parse(pieces, Limits(buffer_size=65535))
        assert err is None
        assert events[0].vars == want_vars
        assert events[0].content_length == len(body)
        assert events[1:] == ([Body(body)] if body else []) + [END]
        assert p.closed


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 2**16),
       st.sampled_from([None, Limits(buffer_size=32), Limits(max_body=4)]))
def test_fuzz_random_bytes(data, seed, limits):
    whole = parse([data], limits)[:2]
    assert parse(random_split(data, random.Random(seed), 7), limits)[:2] == whole


@FUZZ
@given(st.integers(0, 3), st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(max_size=80),
       st.integers(0, 2**16))
def test_fuzz_bogus_headers(modifier1, size, modifier2, rest, seed):
    data = struct.pack("<BHB", modifier1, size, modifier2) + rest
    whole = parse([data])[:2]
    assert parse(random_split(data, random.Random(seed), 5))[:2] == whole
    if whole[1] is None and whole[0]:
        assert modifier1 == 0 and size <= 4096 and len(rest) >= size
