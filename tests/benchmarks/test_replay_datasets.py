from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from benchmarks import datasets as D
from tests.benchmarks.replay_helpers import synthetic, write_alpacaeval, write_long, write_routerbench


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.jsonl", "d.jsonl.gz"])
def test_long_roundtrip_formats(tmp_path, name):
    ds = synthetic(12)
    p = write_long(ds, str(tmp_path / name))
    got = D.load(p)
    assert got.models == ds.models
    assert got.prompt_ids == ds.prompt_ids
    np.testing.assert_allclose(got.quality, ds.quality)
    np.testing.assert_allclose(got.cost_usd, ds.cost_usd)
    assert got.input_tokens.dtype.kind == "i" and got.skipped == {}
    assert list(got.tasks) == list(ds.tasks)


def _write(tmp_path, text: str, name: str = "d.csv") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


HEADER = "prompt_id,task,prompt,model,quality,input_tokens,output_tokens,cost_usd\n"


def test_bad_rows_are_counted_not_used(tmp_path):
    rows = [
        "p1,mbpp,hello,a,1,10,2,0.001",
        "p1,mbpp,,b,0,10,2,0.002",
        "p2,mbpp,x,a,1.5,10,2,0.001",  # quality outside 0..1
        "p2,mbpp,x,b,0,10,2,0.002",
        "p3,mbpp,y,a,oops,10,2,0.001",  # non-numeric
        "p3,mbpp,y,b,1,10,2,0.002",
        "p1,mbpp,hello,a,0,10,2,0.001",  # duplicate
        "p4,mbpp,z,a,1,-3,2,0.001",  # negative
        ",mbpp,z,a,1,3,2,0.001",  # no id
    ]
    ds = D.load(_write(tmp_path, HEADER + "\n".join(rows) + "\n"))
    assert ds.prompt_ids == ["p1"]
    assert ds.prompts == ["hello"]  # prompt text given once, on the first row
    sk = ds.skipped
    assert sk["quality missing or outside 0..1"] == 1
    assert sk["non-numeric value"] == 1
    assert sk["duplicate (prompt_id, model)"] == 1
    assert sk["negative tokens or cost"] == 1
    assert sk["missing prompt_id or model"] == 1
    assert sk["prompt lacks some models (incomplete row set)"] == 2  # p2 and p3 (p4 has no valid row at all)
    assert "skipped" in ds.summary()


def test_unknown_column_is_an_error_naming_it(tmp_path):
    p = _write(tmp_path, "prompt_id,model,quality,colour\np1,a,1,red\n")
    with pytest.raises(D.DatasetError) as e:
        D.load(p)
    assert "colour" in str(e.value) and e.value.file == p and e.value.line is not None


def test_unknown_key_in_a_later_jsonl_row(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt_id": "p", "model": "a", "quality": 1, "cost_usd": 0.1}\n'
                 '{"prompt_id": "q", "model": "a", "quality": 1, "cost_usd": 0.1, "qualty": 0}\n', encoding="utf-8")
    with pytest.raises(D.DatasetError, match="qualty") as e:
        D.load(str(p))
    assert e.value.line == 2


def test_csv_row_with_extra_values_is_counted(tmp_path):
    ds = D.load(_write(tmp_path, "prompt_id,model,quality,cost_usd\np,a,1,0.1\nq,a,1,0.1,surplus\n"))
    assert ds.prompt_ids == ["p"] and ds.skipped == {"more values than columns": 1}


def test_missing_required_column(tmp_path):
    with pytest.raises(D.DatasetError, match="quality"):
        D.load(_write(tmp_path, "prompt_id,model\np1,a\n"))


def test_no_usable_rows(tmp_path):
    with pytest.raises(D.DatasetError, match="no usable rows"):
        D.load(_write(tmp_path, "prompt_id,model,quality\np1,a,7\n"))


def test_bad_json_line_counted(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt_id": "p", "model": "a", "quality": 1, "prompt": "hi", "cost_usd": 0.1}\n{not json\n[1]\n', encoding="utf-8")
    ds = D.load(str(p))
    assert ds.n_prompts == 1 and ds.skipped["unparseable row"] == 2


def test_tokens_estimated_when_absent(tmp_path):
    ds = D.load(_write(tmp_path, "prompt_id,prompt,model,quality,cost_usd\np1,hello there world,a,1,0.1\n"))
    assert ds.input_tokens[0, 0] == D.estimate_tokens("hello there world") > 0
    assert ds.output_tokens[0, 0] == 1


def test_cost_from_catalog_price(tmp_path):
    pytest.importorskip("router.catalog")
    from router.catalog import load_catalog
    from router.pricing import estimate_cost_usd

    ds = D.load(_write(tmp_path, "prompt_id,prompt,model,quality,input_tokens,output_tokens\np1,hi,openai:gpt-4o-mini,1,1000,500\n"))
    price = load_catalog().get("openai:gpt-4o-mini").price
    assert ds.cost_usd[0, 0] == pytest.approx(float(estimate_cost_usd(price, 1000, 500)))


def test_cost_missing_and_model_unknown_is_clear_error(tmp_path):
    pytest.importorskip("router.catalog")
    p = _write(tmp_path, "prompt_id,prompt,model,quality\np1,hi,no-such-model,1\n")
    with pytest.raises(D.DatasetError, match="no-such-model") as e:
        D.load(p)
    assert e.value.file == p


def test_bad_split_value(tmp_path):
    with pytest.raises(D.DatasetError, match="split"):
        D.load(_write(tmp_path, "prompt_id,model,quality,cost_usd,split\np1,a,1,0.1,validation\n"))


def test_split_recorded_and_random_stratified(tmp_path):
    ds = synthetic(60)
    tr, te = D.split(ds, 0.25, seed=3)
    assert tr.n_prompts + te.n_prompts == 60 and not set(tr.prompt_ids) & set(te.prompt_ids)
    for t in set(ds.tasks):
        assert (te.tasks == t).sum() == 5
    ds.split = np.array(["test" if i % 4 == 0 else "train" for i in range(60)])
    tr2, te2 = D.split(ds)
    assert te2.n_prompts == 15 and all(int(p[1:]) % 4 == 0 for p in te2.prompt_ids)
    with pytest.raises(D.DatasetError):
        D.split(ds, 1.5)


def test_routerbench_wide_csv(tmp_path):
    p = write_routerbench(str(tmp_path / "rb" / "mbpp_test.csv"))
    ds = D.load(p)  # format guessed from the header
    assert ds.models == ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"]
    assert ds.prompt_ids == ["mbpp#0"]
    assert ds.skipped["unparseable row"] == 1  # the 2-part prompt
    assert ds.skipped["quality missing or outside 0..1"] == 1  # NaN cell
    assert ds.cost_usd[0, 0] == pytest.approx(0.004)
    assert list(ds.split) == ["test"]
    assert D.load(str(tmp_path / "rb"), "routerbench").n_prompts == 1


def test_alpacaeval(tmp_path, monkeypatch):
    root = write_alpacaeval(str(tmp_path / "ae"))
    monkeypatch.setattr(D, "_price_fn", lambda m, cache: lambda i, o: 1e-6 * (i + o) * (10 if "gpt4" in m else 1))
    ds = D.load(root, "alpacaeval")
    assert ds.n_prompts == 3 and set(ds.models) == {"gpt4_1106_preview", "gpt-3.5-turbo-1106"}
    j = ds.models.index("gpt-3.5-turbo-1106")
    np.testing.assert_allclose(ds.quality[:, j], [0.2, 0.9, 0.0])
    assert (ds.output_tokens[:, j] > 0).all() and set(ds.task_kinds()) == {"chat"}


def test_alpacaeval_prices_from_catalog_or_genai_and_unpriced_models_dropped(tmp_path):
    root = write_alpacaeval(str(tmp_path / "ae"), extra_models=("mystery-model-7b",))
    ds = D.load(root)  # format guessed from the results/ folder
    assert set(ds.models) == {"gpt4_1106_preview", "gpt-3.5-turbo-1106"}
    assert ds.skipped == {"model without a price, dropped: mystery-model-7b": 3}
    g4, g35 = ds.models.index("gpt4_1106_preview"), ds.models.index("gpt-3.5-turbo-1106")
    # genai-prices list prices: gpt-4-1106-preview 10/30, gpt-3.5-turbo-1106 1/2 USD per 1M tokens
    i, o = ds.input_tokens[0, g4], ds.output_tokens[0, g4]
    assert ds.cost_usd[0, g4] == pytest.approx((10 * i + 30 * o) / 1e6)
    assert (ds.cost_usd[:, g4] > ds.cost_usd[:, g35]).all()


def test_shipped_file_loads_without_shared():
    ds = D.load_shipped()
    assert ds.n_prompts == 3150 and ds.n_models == 11 and ds.skipped == {}
    assert set(ds.tasks) == {"arc-challenge", "mbpp", "winogrande"}
    assert ds.quality.shape == ds.cost_usd.shape == (3150, 11)
    assert set(np.unique(ds.quality)) <= {0.0, 1.0}
    assert set(ds.split) == {"train", "test"}
    assert all(ds.prompts)
    # no response text shipped: only the documented columns
    with gzip.open(D.shipped_path(), "rt", encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    assert header[:9] == list(D.LONG_COLUMNS)[:9] and set(header) <= set(D.LONG_COLUMNS)  # `answer`/`parse_ok` optional
    assert os.path.getsize(D.shipped_path()) < 600_000


def test_task_kind_map():
    assert D.task_kind("mbpp") == "code" and D.task_kind("GSM8K") == "math"
    assert D.task_kind("arc-challenge") == "reasoning" and D.task_kind("summarization") == "summarization"
    assert D.task_kind("whatever") == "chat"


def test_real_routerbench_subset(shared_dir):
    ds = D.load(os.path.join(shared_dir, "datasets", "routerbench-subset"))
    assert ds.n_prompts == 3150 and ds.n_models == 11
    assert ds.skipped["unparseable row"] == 14
    assert ds.skipped["prompt lacks some models (incomplete row set)"] == 14
    j = ds.models.index("gpt-4-1106-preview")
    assert ds.quality[:, j].mean() == pytest.approx(0.88, abs=0.01)


def test_real_alpacaeval_with_prices(shared_dir):
    root = os.path.join(shared_dir, "datasets", "alpacaeval-pairwise")
    ds = D.load(root, "alpacaeval")
    assert ds.n_models >= 15 and ds.n_prompts >= 800
    assert ds.skipped.get("prompt lacks some models (incomplete row set)", 0) >= 1  # phi-2 / instruct lack a few
    assert any(k.startswith("model without a price") for k in ds.skipped)
    assert ds.quality.min() >= 0 and ds.quality.max() <= 1
