"""The Responses store: per-key rows, expiry, and its bounds (rows, bytes, one row)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from router.config.schema import ServerCfg
from router.server.responses_store import ResponseStore

CTX = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def resp(rid: str) -> dict[str, Any]:
    return {"id": rid, "object": "response", "output": []}


async def test_rows_belong_to_their_key(tmp_path: Any) -> None:
    st = ResponseStore(tmp_path / "r.sqlite")
    assert await st.put("team-a", "resp_1", CTX, resp("resp_1"))
    got = await st.get("team-a", "resp_1")
    assert got is not None and got.context == CTX and got.response["id"] == "resp_1"
    assert await st.get("team-b", "resp_1") is None  # another key: as if it did not exist
    assert await st.get("", "resp_1") is None
    assert not await st.delete("team-b", "resp_1")
    assert await st.get("team-a", "resp_1") is not None
    assert await st.delete("team-a", "resp_1")
    assert await st.get("team-a", "resp_1") is None
    st.close()


def test_rows_expire(tmp_path: Any) -> None:
    st = ResponseStore(tmp_path / "r.sqlite", ttl_s=60)
    now = time.time()
    st.put_sync("k", "old", b"[]", b"{}", now=now - 120)
    st.put_sync("k", "new", b"[]", b"{}", now=now)
    assert st.get_sync("k", "old", now=now) is None and st.get_sync("k", "new", now=now) is not None
    assert st.count() == 1  # the expired row was swept by the insert
    st.close()


def test_bounded_by_rows_and_bytes(tmp_path: Any) -> None:
    st = ResponseStore(tmp_path / "r.sqlite", max_items=3, max_bytes=8000)
    now = time.time()
    for i in range(6):
        assert st.put_sync("k", f"r{i}", b"[]", b"{}", now=now + i)
    assert st.count() == 3
    assert [st.get_sync("k", f"r{i}", now=now + 10) is not None for i in range(6)] == [False] * 3 + [True] * 3
    big = b"x" * 900  # 1/8 of max_bytes is the largest row kept
    for i in range(12):
        assert st.put_sync("k", f"b{i}", b"[]", big, now=now + 20 + i)
    assert st.count() <= 3
    assert not st.put_sync("k", "huge", b"[]", b"x" * 1001)  # over max_bytes / 8: not stored
    assert st.get_sync("k", "huge") is None
    st.close()


def test_the_file_survives_a_restart(tmp_path: Any) -> None:
    st = ResponseStore(tmp_path / "r.sqlite")
    st.put_sync("k", "r1", b'[{"role":"user","content":"a"}]', b'{"id":"r1"}')
    st.close()
    st2 = ResponseStore(tmp_path / "r.sqlite")
    got = st2.get_sync("k", "r1")
    assert got is not None and got.response == {"id": "r1"}
    st2.close()


def test_config_section() -> None:
    assert ServerCfg().responses.db is None  # default: $QUOTAROUTE_HOME/responses.sqlite
    assert ServerCfg.model_validate({"responses": {"db": False}}).responses.db == "off"  # YAML `off`
    cfg = ServerCfg.model_validate({"responses": {"db": "~/r.sqlite", "ttl_s": 3600, "max_items": 50,
                                                  "max_mb": 8}}).responses
    assert (cfg.db, cfg.ttl_s, cfg.max_items, cfg.max_mb) == ("~/r.sqlite", 3600, 50, 8)
    with pytest.raises(ValueError):
        ServerCfg.model_validate({"responses": {"max_itmes": 5}})
    with pytest.raises(ValueError):
        ServerCfg.model_validate({"responses": {"ttl_s": 0}})


def test_built_from_a_config_file(tmp_path: Any) -> None:
    from router.config.build import build_server_settings
    from router.config.load import load_config

    cfg = tmp_path / "quotaroute.yaml"
    cfg.write_text(f"server:\n  responses:\n    db: {tmp_path / 'resp.sqlite'}\n    max_items: 7\n")
    settings = build_server_settings(load_config(cfg))
    assert settings.responses_db_path() == tmp_path / "resp.sqlite" and settings.responses.max_items == 7
    cfg.write_text("server:\n  responses:\n    db: off\n")
    assert build_server_settings(load_config(cfg)).responses_db_path() is None
