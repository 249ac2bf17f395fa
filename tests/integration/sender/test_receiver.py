"""The loopback Receiver that other tests rely on does what its docstring promises."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from hookline.clock import ManualClock
from tests.receiver import Receiver, StaticResolver


async def test_statuses_are_answered_in_turn_and_the_last_repeats(receiver: Receiver) -> None:
    receiver.on("/seq", statuses=[503, 503, 200], headers={"Retry-After": "7"})
    async with aiohttp.ClientSession() as session:
        answers = []
        for _ in range(4):
            async with session.post(receiver.url_for("/seq"), data=b"{}") as response:
                answers.append((response.status, response.headers.get("Retry-After")))

    assert answers == [(503, "7"), (503, "7"), (200, "7"), (200, "7")]
    assert [r.path for r in receiver.requests_to("/seq")] == ["/seq"] * 4


async def test_requests_are_recorded_with_body_headers_time_and_connection() -> None:
    clock = ManualClock()
    async with Receiver(clock=clock) as receiver, aiohttp.ClientSession() as session:
        async with session.put(
            receiver.url_for("/a?x=1"), data=b'{"n": 1}', headers={"X-Test": "yes"}
        ) as response:
            assert response.status == 200
        clock.advance(5)
        async with session.post(receiver.url_for("b"), data=b"") as response:
            assert response.status == 200

    first, second = receiver.requests
    assert (first.method, first.path, first.query_string) == ("PUT", "/a", "x=1")
    assert first.headers["x-test"] == "yes"
    assert first.json() == {"n": 1}
    assert (second.received_at - first.received_at).total_seconds() == 5
    assert second.received_monotonic_s - first.received_monotonic_s == 5
    assert first.peer is not None
    assert first.peer[0] == "127.0.0.1"
    assert first.connection_number == second.connection_number == 1
    assert receiver.connections_accepted == 1
    assert receiver.connections_used == 1


async def test_redirect_location_and_fixed_body(receiver: Receiver) -> None:
    receiver.on("/r", statuses=[307], location="http://127.0.0.1:1/next", body=b"moved")
    async with (
        aiohttp.ClientSession() as session,
        session.post(receiver.url_for("/r"), allow_redirects=False) as response,
    ):
        assert response.status == 307
        assert response.headers["Location"] == "http://127.0.0.1:1/next"
        assert await response.read() == b"moved"


async def test_stream_bytes_sends_exactly_that_many(receiver: Receiver) -> None:
    receiver.on("/s", stream_bytes=200_000)
    async with (
        aiohttp.ClientSession() as session,
        session.post(receiver.url_for("/s")) as response,
    ):
        body = await response.read()
    assert len(body) == 200_000
    assert receiver.streamed_bytes == 200_000


async def test_hold_keeps_the_request_open_until_the_event(receiver: Receiver) -> None:
    release = asyncio.Event()
    receiver.on("/hold", hold=release, statuses=[202])
    async with aiohttp.ClientSession() as session:
        pending = asyncio.create_task(session.post(receiver.url_for("/hold")))
        await receiver.wait_for(1, timeout_s=5, path="/hold")
        assert not pending.done()
        release.set()
        response = await asyncio.wait_for(pending, timeout=5)
        assert response.status == 202
        response.release()


async def test_close_releases_held_requests() -> None:
    receiver = Receiver()
    await receiver.start()
    receiver.on("/hold", hold=asyncio.Event())  # never set
    async with aiohttp.ClientSession() as session:
        pending = asyncio.create_task(session.post(receiver.url_for("/hold")))
        await receiver.wait_for(1, timeout_s=5)
        await asyncio.wait_for(receiver.close(), timeout=5)
        # the held answer was let go (or its connection closed); either way the client is done
        try:
            response = await asyncio.wait_for(pending, timeout=5)
            response.release()
        except aiohttp.ClientError:
            pass
        assert pending.done()


async def test_wait_for_fails_after_its_bound(receiver: Receiver) -> None:
    with pytest.raises(AssertionError, match=r"expected 1 requests within 0\.05 s; got 0"):
        await receiver.wait_for(1, timeout_s=0.05)


async def test_connections_are_counted_even_without_a_request(receiver: Receiver) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    for _ in range(1000):  # bounded: the accept is a few loop turns away, no wall-clock wait
        if receiver.connections_accepted:
            break
        await asyncio.sleep(0)
    writer.close()
    await writer.wait_closed()
    assert receiver.connections_accepted == 1
    assert receiver.requests == []


async def test_static_resolver_maps_names_and_fails_others() -> None:
    resolver = StaticResolver({"Hook.Test": ["127.0.0.1", "::1"]})

    both = await resolver.resolve("hook.test.", 8080, family=socket.AF_UNSPEC)
    only_v4 = await resolver.resolve("hook.test", 8080, family=socket.AF_INET)

    assert [(r["host"], r["port"], r["family"]) for r in both] == [
        ("127.0.0.1", 8080, socket.AF_INET),
        ("::1", 8080, socket.AF_INET6),
    ]
    assert [r["host"] for r in only_v4] == ["127.0.0.1"]
    with pytest.raises(socket.gaierror):
        await resolver.resolve("other.test", 80)
    assert resolver.lookups == ["hook.test.", "hook.test", "other.test"]
