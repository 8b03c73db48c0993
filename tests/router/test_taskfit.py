"""The bundled task-fit profile (router/data/taskfit.yaml) and how it layers in the catalog."""

from __future__ import annotations

import re

import pytest
import yaml

from router.catalog import BUNDLED_TASKFIT_PATH, TIER_QUALITY, load_catalog, load_taskfit
from router.errors import ConfigError
from router.types import TASK_KINDS


@pytest.fixture(scope="module")
def data() -> dict:
    with open(BUNDLED_TASKFIT_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(use_genai=False)


def test_default_catalog_tells_task_kinds_apart(catalog):
    mini = catalog.get("openai:gpt-5-mini")
    assert len({mini.quality(k) for k in TASK_KINDS}) >= 4
    assert mini.quality("code") > mini.quality("reasoning")
    # a strong coder that is weak at constrained writing, and the reverse
    haiku, flash_lite = catalog.get("anthropic:claude-haiku-4-5"), catalog.get("gemini:gemini-3.1-flash-lite")
    assert haiku.quality("code") > haiku.quality("summarization")
    assert flash_lite.quality("summarization") > flash_lite.quality("code")
    # kinds no source measures keep the tier prior
    assert mini.quality("translation") == mini.quality("chat") == TIER_QUALITY["mid"]
    # the same weights at another provider get the same profile
    assert catalog.get("azure:gpt-5-mini").task_quality == mini.task_quality


def test_models_without_a_public_figure_keep_the_tier_prior(catalog, data):
    profiled = set(data["models"])
    for card in catalog:
        if card.id not in profiled:
            assert set(card.task_quality.values()) == {TIER_QUALITY[card.tier]}, card.id
    assert "yi:yi-large" not in profiled
    assert not profiled & set(data["no_public_figure"]) and "yi:yi-large" in data["no_public_figure"]


def test_user_profile_and_overrides_win(tmp_path, catalog):
    prof = tmp_path / "profile.yaml"
    prof.write_text("openai:gpt-5-mini: {code: 0.5}\n", encoding="utf-8")
    cat = load_catalog(use_genai=False, profile_path=str(prof))
    mini, bundled = cat.get("openai:gpt-5-mini"), catalog.get("openai:gpt-5-mini")
    assert mini.quality("code") == 0.5
    assert mini.quality("math") == bundled.quality("math")  # kinds the user leaves out keep the bundled figure
    cat = load_catalog(use_genai=False, overrides={"openai:gpt-5-mini": {"task_quality": {"math": 0.4}}})
    assert cat.get("openai:gpt-5-mini").task_quality == {"math": 0.4}
    flat = load_catalog(use_genai=False, taskfit_path=None).get("openai:gpt-5-mini")
    assert set(flat.task_quality.values()) == {TIER_QUALITY["mid"]}


def test_data_file_is_sourced_dated_and_follows_its_mapping(data, catalog):
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["as_of"])
    for name, src in data["sources"].items():
        assert src["url"].startswith("https://") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", src["date"]), name
        assert src["licence"]
    assert set(data["task_groups"]) | set(data["not_covered"]) == set(TASK_KINDS)
    med = data["frontier_median"]
    for mid, entry in data["models"].items():
        card = catalog.get(mid)
        assert entry["source"] in data["sources"] and entry["livebench_row"]
        assert entry["tier"] == card.tier
        prior = TIER_QUALITY[card.tier]
        assert set(entry["quality"]) == set(entry["score"]) <= set(data["task_groups"])
        for kind, score in entry["score"].items():
            want = round(min(0.99, max(0.05, (prior + 0.9 * score / med[kind]) / 2)), 2)
            assert entry["quality"][kind] == pytest.approx(want, abs=0.011), (mid, kind)
            assert card.quality(kind) == entry["quality"][kind]


def test_load_taskfit_reports_bad_files(tmp_path):
    p = tmp_path / "tf.yaml"
    p.write_text("models:\n  openai:gpt-5-mini:\n    quality: {code: 1.5}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"quality must be a number in \[0, 1\]") as e:
        load_taskfit(str(p))
    assert "models.openai:gpt-5-mini.quality.code" in str(e.value)
    p.write_text("nothing: here\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'models' mapping"):
        load_taskfit(str(p))
    assert load_taskfit()["openai:gpt-5-mini"]["code"] > 0
