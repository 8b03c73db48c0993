"""Fair upstream capacity: FIFO waiters, a bounded queue, a clear 503 past it, no health penalty."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import httpx
import pytest

from providers._http import Call, transport_error
from router.errors import Failure, NoRouteAvailable, UpstreamBusy
from router.server import gctune
from router.server.aiohttp_transport import HostGate, PoolFull, aiohttp_client, default_pool
from router.server.cli import default_workers
from router.server.errors import failure_from


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_waiters_are_served_first_come_first_served() -> None:
    gate = HostGate(1, 10)
    await gate.acquire(None, "h")
    order: list[int] = []

    async def waiter(i: int) -> None:
        await gate.acquire(None, "h")
        order.append(i)
        await asyncio.sleep(0)
        gate.release()

    tasks = []
    for i in range(6):
        tasks.append(asyncio.ensure_future(waiter(i)))
        await asyncio.sleep(0)  # queued in this order
    gate.release()
    await asyncio.gather(*tasks)
    assert order == list(range(6))
    assert gate.busy == 0 and not gate.waiters


async def test_a_full_queue_refuses_at_once_with_retry_after() -> None:
    gate = HostGate(1, 1)
    await gate.acquire(None, "api.example")
    queued = asyncio.ensure_future(gate.acquire(None, "api.example"))
    await asyncio.sleep(0)
    with pytest.raises(PoolFull) as ei:
        await gate.acquire(None, "api.example")
    assert ei.value.retry_after > 0 and "api.example" in str(ei.value)
    assert isinstance(ei.value, httpx.PoolTimeout)
    gate.release()
    await queued  # the queued one got the slot
    gate.release()
    assert gate.busy == 0 and gate.refused == 1


async def test_a_waiter_that_times_out_leaves_the_queue_and_the_slot_count_right() -> None:
    gate = HostGate(1, 5)
    await gate.acquire(None, "h")
    with pytest.raises(httpx.PoolTimeout):
        await gate.acquire(0.05, "h")
    assert not gate.waiters
    cancelled = asyncio.ensure_future(gate.acquire(None, "h"))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.release()
    assert gate.busy == 0  # nobody was waiting any more: the slot is free
    await gate.acquire(0.05, "h")
    gate.release()


def test_default_pool_is_sized_from_the_descriptor_limit() -> None:
    assert default_pool(1024) == (480, 480)
    assert default_pool(20000) == (9968, 9968)
    assert default_pool(10)[0] >= 16
    size, queue = default_pool()
    assert size >= 16 and queue == size


def test_pool_errors_map_to_upstream_busy_not_a_vendor_fault() -> None:
    e = transport_error(PoolFull("busy", retry_after=2.0), call=Call("openai", "gpt-4o-mini"))
    assert isinstance(e, UpstreamBusy) and e.retry_after == 2.0 and e.code == "upstream_busy"
    assert e.vendor_fault is False and e.retryable is False
    f = failure_from(e)
    assert isinstance(f, Failure) and f.status == 503 and f.retry_after == 2.0
    plain = transport_error(httpx.PoolTimeout("no connection"), call=Call("openai", "m"))
    assert isinstance(plain, UpstreamBusy)
    nr = NoRouteAvailable("every step busy", last_error=e)
    assert failure_from(nr).status == 503 and failure_from(nr).retry_after == 2.0


async def test_the_client_queues_in_order_and_refuses_past_the_queue() -> None:
    from aiohttp import web

    release = asyncio.Event()

    async def slow(req: Any) -> Any:
        await release.wait()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/x", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = aiohttp_client()
    client._transport.set_pool(f"127.0.0.1:{port}", 2, 1)  # type: ignore[attr-defined]
    try:
        url = f"http://127.0.0.1:{port}/v1/x"
        busy = [asyncio.ensure_future(client.post(url, content=b"{}", timeout=10)) for _ in range(3)]
        await asyncio.sleep(0.3)  # two in flight, one queued
        with pytest.raises(PoolFull):
            await client.post(url, content=b"{}", timeout=10)
        release.set()
        done = await asyncio.gather(*busy)
        assert [r.status_code for r in done] == [200, 200, 200]
        gate = client._transport.gates[f"127.0.0.1:{port}"]  # type: ignore[attr-defined]
        assert gate.busy == 0 and gate.served == 1 and gate.refused == 1
        async with client.stream("POST", url, content=b"{}") as r:  # a stream holds its slot until closed
            assert gate.busy == 1
            await r.aread()
        assert gate.busy == 0
    finally:
        await client.aclose()
        await runner.cleanup()


def test_gc_tuning_freezes_the_startup_heap_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        done = gctune.tune(freeze=True, thresholds=(20_000, 15, 50))
        assert gc.get_threshold() == (20_000, 15, 50)
        assert done["frozen_objects"] == gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_default_workers_only_where_the_ledger_is_shared() -> None:
    from router.config import parse_config

    shared = parse_config({"ledger": {"store": "sqlite"}})
    memory = parse_config({"ledger": {"store": "memory"}})
    assert default_workers(shared, None, cpus=2)[0] == 2
    assert default_workers(shared, None, cpus=16)[0] == 4
    assert default_workers(memory, None, cpus=8) == (1, default_workers(memory, None)[1])
    assert default_workers(shared, "pkg:factory", cpus=8)[0] == 1
