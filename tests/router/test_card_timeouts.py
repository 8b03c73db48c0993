"""The model card's `timeouts` field: a partial {connect_s, first_byte_s, idle_s},
validated, settable through `models.overrides.<id>.timeouts`, merged key by key."""

from __future__ import annotations

import pytest

from router.catalog import Catalog, load_catalog
from router.errors import ConfigError
from tests.router.routing_helpers import card


def test_override_sets_and_merges_card_timeouts() -> None:
    cat = Catalog([card("p:m")])
    assert cat.get("p:m").timeouts is None
    cat = cat.with_overrides({"p:m": {"timeouts": {"first_byte_s": 60}}})
    assert cat.get("p:m").timeouts == {"first_byte_s": 60.0}
    cat = cat.with_overrides({"p:m": {"timeouts": {"idle_s": 30}}})
    assert cat.get("p:m").timeouts == {"first_byte_s": 60.0, "idle_s": 30.0}


@pytest.mark.parametrize("bad,match", [({"first_byte": 5}, "unknown timeout"), ({"idle_s": -1}, "idle_s"),
                                       ({"idle_s": ".nan"}, "idle_s"), (5, "mapping")])
def test_bad_card_timeouts_are_config_errors(bad: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as ei:
        Catalog([card("p:m")]).with_overrides({"p:m": {"timeouts": bad}})
    assert "p:m.timeouts" in str(ei.value.key)


def test_bundled_cards_have_valid_timeouts() -> None:
    for c in load_catalog(use_genai=False).all():
        assert c.timeouts is None or set(c.timeouts) <= {"connect_s", "first_byte_s", "idle_s"}
