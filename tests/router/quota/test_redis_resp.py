"""The pipelined RESP client: a silent server times commands out, replies stay in order."""

from __future__ import annotations

import asyncio
import socket

import pytest

from router.quota._resp import RespClient, RespError
from router.quota.redis_store import RedisStore
from router.quota.store import LedgerUnavailable


async def test_pipelined_replies_match_their_commands(redis_url, redis_prefix):
    c = RespClient(redis_url)
    outs = await asyncio.gather(*(c.execute("INCRBY", redis_prefix + "n", i) for i in range(1, 51)),
                                c.execute("GET", redis_prefix + "missing"))
    assert sorted(outs[:-1]) == sorted(sum(range(1, k + 1)) for k in range(1, 51)) and outs[-1] is None
    with pytest.raises(RespError):
        await c.execute("NOSUCHCOMMAND")
    assert await c.execute("ECHO", "héllo") == "héllo".encode()  # still in step after an error reply
    c.close()


async def test_silent_server_times_out_every_waiter_and_reconnects():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepts (kernel backlog) but never answers
    port = srv.getsockname()[1]
    try:
        c = RespClient(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
        res = await asyncio.gather(*(c.execute("PING") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in res), res
        with pytest.raises(TimeoutError):
            await c.execute("PING")  # a new connection, timed out again
        c.close()
        s = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.2)
        with pytest.raises(LedgerUnavailable):
            await s.acquire("r1", [], 1.0, 0.0)
        assert await s.release("r0", 0.0) is True and s.pending == 1  # kept for when Redis is back
        await s.aclose()
    finally:
        srv.close()
