from __future__ import annotations

import subprocess
import sys
from collections import Counter
from decimal import Decimal as D

import pytest

from router.catalog import TIER_QUALITY, Catalog, ModelCard, load_catalog, load_profile
from router.errors import ConfigError, UnknownModel, UnknownPrice
from router.pricing import cost
from router.types import TASK_KINDS, Usage


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()  # the conftest network guard is active: this must be offline


def test_size_and_coverage(cat: Catalog) -> None:
    assert len(cat) >= 60
    assert len(cat.providers()) >= 15
    required = {"openai", "anthropic", "gemini", "bedrock", "deepseek", "moonshot", "zhipu", "dashscope", "minimax",
                "yi", "stepfun", "baichuan", "qianfan", "ark", "hunyuan", "siliconflow", "groq", "mistral", "together",
                "openrouter", "azure", "ollama", "vllm"}
    assert required <= set(cat.providers())
    currencies = Counter(c.price.currency for c in cat if c.price)
    assert currencies["CNY"] >= 20 and currencies["USD"] >= 40


def test_every_card_is_priced_with_a_source(cat: Catalog) -> None:
    for c in cat:
        assert c.price is not None, c.id
        assert c.price.source and c.price.as_of, c.id
        assert c.id == f"{c.provider}:{c.model}"
        assert "streaming" in c.capabilities
        assert c.regions, c.id
        assert set(c.task_quality) == set(TASK_KINDS)


def test_prices_from_genai_prices(cat: Catalog) -> None:
    p = cat.get("openai:gpt-5.5").price
    assert (p.input, p.cache_read, p.output) == (D(5), D("0.5"), D(30))
    assert p.source.startswith("genai-prices 0.2.3")
    g = cat.get("gemini:gemini-2.5-pro").price
    assert g.tiers and g.tiers[0].above_input_tokens == 200_000
    assert (g.tiers[0].input, g.tiers[0].output) == (D("2.5"), D(15))
    a = cat.get("anthropic:claude-haiku-4-5").price
    assert (a.cache_read, a.cache_write) == (D("0.1"), D("1.25"))


def test_bundled_cny_and_time_discounts(cat: Catalog) -> None:
    ds = cat.get("deepseek-v4-flash")  # alias
    assert ds.id == "deepseek:deepseek-flash"
    assert ds.price.currency == "CNY" and len(ds.price.time_discounts) == 4
    assert ds.regions == frozenset({"cn"})
    assert cat.get("zhipu:glm-5.1").price.currency == "CNY"
    assert cat.get("qianfan:ernie-speed-128k").price.is_free


def test_free_tiers(cat: Catalog) -> None:
    flash = cat.get("gemini:gemini-2.5-flash")
    assert flash.free_tier["limits"] == {"rpm": 5, "rpd": 20, "tpm": 250000}
    assert flash.free_tier["source"] and flash.free_tier["as_of"]
    free = [c for c in cat.by_provider("openrouter") if c.model.endswith(":free")]
    assert len(free) >= 5
    assert all(c.price.is_free and c.free_tier["pool"] == "openrouter:free" for c in free)
    assert flash.has_free_tier and not cat.get("openai:gpt-5.5").has_free_tier
    assert not cat.get("ollama:llama3.1").has_free_tier and cat.get("ollama:llama3.1").is_local


def test_lookup_by_alias_bare_name_and_case(cat: Catalog) -> None:
    assert cat.get("gpt-4.1").id == "openai:gpt-4.1"  # catalog order: openai before azure
    assert cat.get("azure:gpt-4.1").provider == "azure"
    assert cat.get("GLM-5.1").id == "zhipu:glm-5.1"
    assert cat.get("mistral:mistral-large-latest").model == "mistral-large-2512"
    assert "gpt-5.5" in cat and "gpt-9" not in cat and 42 not in cat


def test_unknown_model_suggests(cat: Catalog) -> None:
    with pytest.raises(UnknownModel) as ei:
        cat.get("openai:gpt-5.6")
    assert "openai:gpt-5.5" in str(ei.value) and "did you mean" in str(ei.value)
    with pytest.raises(KeyError):  # UnknownModel is a KeyError too
        cat.get("nothing-like-this-at-all")


def test_unknown_price_is_explicit_never_zero(cat: Catalog) -> None:
    c2 = cat.with_overrides({"acme:newmodel": {"context_window": 8000}})
    card = c2.get("acme:newmodel")
    assert card.price is None
    with pytest.raises(UnknownPrice, match="acme:newmodel"):
        card.require_price()
    c3 = c2.with_overrides({"acme:newmodel": {"price": {"input": 1, "output": 2}}})
    assert cost(Usage(input_tokens=1_000_000), c3.get("acme:newmodel").require_price()).usd == D(1)


def test_user_override_wins(cat: Catalog) -> None:
    c2 = cat.with_overrides({"gpt-5.5": {"price": {"input": 4, "output": 20, "source": "contract"},
                                         "capabilities": ["tools"]}})
    card = c2.get("openai:gpt-5.5")
    assert card.price.input == D(4) and card.price.source == "contract"
    assert card.capabilities == frozenset({"tools", "streaming"})
    assert cat.get("openai:gpt-5.5").price.input == D(5)  # original untouched


def test_malformed_override_file_names_file_line_and_key(tmp_path) -> None:
    f = tmp_path / "over.yaml"
    f.write_text("models:\n  openai:gpt-4o-mini:\n    price:\n      input: lots\n      output: 1\n")
    with pytest.raises(ConfigError) as ei:
        load_catalog(overrides=str(f), use_genai=False)
    e = ei.value
    assert e.file == str(f) and e.line == 4 and e.key == "openai:gpt-4o-mini.price.input"
    assert str(f) in str(e) and ":4" in str(e)


def test_malformed_yaml_syntax_names_line(tmp_path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("models:\n  openai:gpt-4o-mini:\n    price: {input: 1, output: [\n")
    with pytest.raises(ConfigError) as ei:
        load_catalog(overrides=str(f), use_genai=False)
    assert ei.value.file == str(f) and ei.value.line is not None and ei.value.line >= 3


def test_malformed_bundled_style_file_names_key(tmp_path) -> None:
    f = tmp_path / "models.yaml"
    f.write_text("providers:\n  acme:\n    regions: [us]\n    models:\n"
                 "      - {model: m1, context_window: 1000, capabilities: [telepathy], price: {input: 1, output: 1,"
                 " source: s, as_of: '2026'}}\n")
    with pytest.raises(ConfigError) as ei:
        load_catalog(models_path=str(f), use_genai=False)
    assert ei.value.key == "acme:m1.capabilities" and ei.value.line == 5


def test_profile_file(tmp_path) -> None:
    good = tmp_path / "profile.json"
    good.write_text('{"openai:gpt-4o-mini": {"code": 0.55, "math": 0.4}, "not:in-catalog": {"chat": 0.9}}')
    cat = load_catalog(profile_path=str(good), use_genai=False)
    card = cat.get("openai:gpt-4o-mini")
    assert card.task_quality["code"] == 0.55 and card.quality("math") == 0.4
    assert card.quality("chat") == TIER_QUALITY["small"]
    bad = tmp_path / "profile.yaml"
    bad.write_text("openai:gpt-4o-mini:\n  code: 0.5\n  poetry: 0.9\n")
    with pytest.raises(ConfigError) as ei:
        load_profile(str(bad))
    assert ei.value.line == 3 and ei.value.key == "openai:gpt-4o-mini.poetry"
    bad.write_text("openai:gpt-4o-mini:\n  code: 1.5\n")
    with pytest.raises(ConfigError, match="0, 1"):
        load_profile(str(bad))


def test_without_genai_unpriced_models_are_none_not_zero() -> None:
    cat = load_catalog(use_genai=False)
    assert cat.get("openai:gpt-5.5").price is None
    assert cat.get("deepseek:deepseek-flash").price is not None


def test_card_is_frozen(cat: Catalog) -> None:
    card = cat.get("openai:gpt-5.5")
    with pytest.raises(Exception):
        card.context_window = 1  # type: ignore[misc]
    assert isinstance(card, ModelCard)


def test_import_is_light() -> None:
    code = ("import sys, router.catalog, router.pricing, router.tokens; "
            "print(any(m in sys.modules for m in ('genai_prices', 'tiktoken', 'numpy', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_network_guard_is_on_while_loading() -> None:
    import socket

    with pytest.raises(Exception, match="network"):
        socket.getaddrinfo("pypi.org", 443)
    assert len(load_catalog()) >= 60
