"""Fixtures for the sender's loopback tests: receivers, a sender factory and a connect spy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver

from hookline.clock import Clock, SystemClock
from hookline.sender import Sender
from tests.receiver import Receiver

LOOPBACK_ONLY = [ip_network("127.0.0.1/32")]
USER_AGENT = "hookline/test"

SenderFactory = Callable[..., Awaitable[Sender]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
async def other_receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
async def make_sender() -> AsyncIterator[SenderFactory]:
    """Builds started Senders (loopback allowed unless told otherwise) and closes them after."""
    senders: list[Sender] = []

    async def make(
        *,
        connect_timeout_s: float = 2.0,
        total_timeout_s: float = 5.0,
        allowed_networks: Any = LOOPBACK_ONLY,
        max_connections: int = 100,
        resolver: AbstractResolver | None = None,
        clock: Clock | None = None,
    ) -> Sender:
        sender = Sender(
            connect_timeout_s=connect_timeout_s,
            total_timeout_s=total_timeout_s,
            allowed_networks=allowed_networks,
            max_connections=max_connections,
            user_agent=USER_AGENT,
            resolver=resolver,
            clock=clock or SystemClock(),
        )
        await sender.start()
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.close()


@dataclass
class ConnectSpy:
    """Every outgoing TCP connect the event loop was asked for during a test."""

    addresses: list[Any] = field(default_factory=list)


@pytest.fixture
async def connect_spy(monkeypatch: pytest.MonkeyPatch) -> ConnectSpy:
    """Records each ``sock_connect``/``create_connection`` the running loop makes.

    aiohttp dials through aiohappyeyeballs, which calls ``loop.sock_connect``; a plain
    ``create_connection`` to a host is recorded too, so any connection attempt shows up here.
    """
    loop = asyncio.get_running_loop()
    spy = ConnectSpy()
    sock_connect = loop.sock_connect
    create_connection = loop.create_connection

    async def spying_sock_connect(sock: socket.socket, address: Any) -> None:
        spy.addresses.append(address)
        await sock_connect(sock, address)

    async def spying_create_connection(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("sock") is None:
            spy.addresses.append((kwargs.get("host"), kwargs.get("port"), args[1:]))
        return await create_connection(*args, **kwargs)

    monkeypatch.setattr(loop, "sock_connect", spying_sock_connect)
    monkeypatch.setattr(loop, "create_connection", spying_create_connection)
    return spy


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
