"""The proxy's router interface (`router.server.context.ProxyRouter`): the real Router
and the test double both have every member, with the same shape (a coroutine where
the protocol awaits), so handlers need no probes for either."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest

from providers.fake import FakeProvider
from router import Router
from router.catalog import Catalog
from router.server.context import ProxyRouter
from tests.router.routing_helpers import card
from tests.router.server.fakes import FakeRouter

MEMBERS = [n for n in vars(ProxyRouter) if not n.startswith("_")]


def _routers() -> list[object]:
    return [Router(catalog=Catalog([card("pa:a", "1", "2")]), providers={"pa": FakeProvider(name="pa")}), FakeRouter()]


def test_protocol_lists_what_the_handlers_use():
    assert set(MEMBERS) == {"catalog", "ledger", "health", "policy_name", "model_ids", "achat", "astream",
                            "aexplain", "aembed", "quota_view", "aclose", "wire_of", "acount_tokens"}


@pytest.mark.parametrize("name", MEMBERS)
def test_real_router_and_fake_have_every_member(name):
    want = getattr(ProxyRouter, name)
    for r in _routers():
        assert hasattr(r, name), (type(r).__name__, name)
        if inspect.iscoroutinefunction(want):
            assert inspect.iscoroutinefunction(getattr(r, name)), (type(r).__name__, name)


async def test_fake_router_model_ids_and_quota_view():
    r = FakeRouter()
    assert r.model_ids == ("fake:small", "fake:large")
    view = await r.quota_view(datetime.now(timezone.utc))
    assert "fake:free-daily" in view.pools
