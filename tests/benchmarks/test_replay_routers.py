"""Vectorized policies, baselines, cascades, quota replay and the learned router."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from benchmarks import replay as R
from benchmarks.datasets import Dataset, split
from tests.benchmarks.replay_helpers import synthetic

QH = np.array([[0.5, 0.7, 0.9]])
CH = np.array([[1.0, 2.0, 10.0]])


def test_policies_by_hand():
    assert R.pick_floor(QH, CH, 0.6).tolist() == [1]
    assert R.pick_floor(QH, CH, 0.95).tolist() == [2]  # nothing meets the floor: best expected
    assert R.pick_cap(QH, CH, 5.0).tolist() == [1]
    assert R.pick_cap(QH, CH, 0.5).tolist() == [0]  # nothing under the cap: cheapest
    assert R.pick_balanced(QH, CH, 0.0).tolist() == [2]
    assert R.pick_balanced(QH, CH, 0.05).tolist() == [1]  # .45 / .6 / .4
    assert R.pick_balanced(QH, CH, 1.0).tolist() == [0]


def _tiny(Q, C) -> Dataset:
    Q, C = np.asarray(Q, float), np.asarray(C, float)
    n, m = Q.shape
    return Dataset("tiny", [f"p{i}" for i in range(n)], ["x"] * n, np.array(["mbpp"] * n), [f"m{j}" for j in range(m)],
                   Q, C, np.ones((n, m), int), np.ones((n, m), int))


def test_oracle_and_baselines():
    t = _tiny([[0, 1, 1], [0, 0, 0], [1, 1, 1]], [[1, 2, 3]] * 3)
    res = {r.name: r for r in R.baselines(t, t)}
    o = res["oracle"]
    assert o.choice.tolist() == [1, 0, 0] and o.quality == pytest.approx(2 / 3) and o.cost_usd == pytest.approx(4 / 3)
    assert res["random"].quality == pytest.approx(5 / 9) and res["random"].cost_usd == pytest.approx(2.0)
    assert res["cheapest (m0)"].cost_usd == 1.0
    assert res["best-single (m1)"].quality == pytest.approx(2 / 3)  # first of the tied best
    assert sum(r.family == "single" for r in res.values()) == 3


def test_cascade_checker_accuracy():
    t = _tiny([[0, 0, 1], [1, 0, 0]], [[1, 2, 3]] * 2)
    rng = np.random.default_rng(0)
    perfect = R.cascade(t, (0, 2), 1.0, rng)
    assert perfect.per_prompt_q.tolist() == [1, 1] and perfect.per_prompt_c.tolist() == [4, 1]
    inverted = R.cascade(t, (0, 2), 0.0, rng)  # always wrong: accepts the wrong answer, rejects the right one
    assert inverted.per_prompt_q.tolist() == [0, 0] and inverted.per_prompt_c.tolist() == [1, 4]


def test_profile_estimates_fall_back_for_unseen_task():
    ds = synthetic(60)
    tr, te = ds.subset(ds.tasks != "mbpp"), ds.subset(ds.tasks == "mbpp")
    qhat, chat = R.profile_estimates(tr, te)
    np.testing.assert_allclose(qhat[0], tr.quality.mean(0))
    qk, _ = R.profile_estimates(ds, ds, by="kind")
    assert qk.shape == ds.quality.shape


def test_policy_sweep_groups_and_pair_sweep():
    ds = synthetic(60)
    qhat, chat = R.profile_estimates(ds, ds)
    pts = R.policy_sweeps(qhat, chat, ds)
    assert {r.group for r in pts} == {"quotaroute:cheapest-above-floor", "quotaroute:best-within-cap", "quotaroute:balanced"}
    shares, quals = R.pair_sweep(ds, 2, 0, np.random.default_rng(0).random(60))
    assert min(shares) == 0.0 and max(shares) == 1.0 and len(shares) == len(quals)


def test_quota_replay_free_first_uses_free_pool():
    pytest.importorskip("router.quota.ledger")
    from benchmarks.quota_replay import quota_replay

    t = _tiny([[1, 1, 1]] * 10, [[0.001, 0.002, 0.01]] * 10)
    cfg = {"quotas": [{"id": "f", "models": ["m0"], "free": True, "on_exhaust": "paid", "limits": [{"per": "day", "requests": 4}]}]}
    qhat = np.tile([0.8, 0.8, 0.9], (10, 1))
    out = quota_replay(t, np.full(10, 1), qhat, config=cfg)
    by = {s["strategy"]: s for s in out["strategies"]}
    assert by["paid-only"]["effective_cost_usd"] == "0.020000"
    assert by["quota-oblivious"]["effective_cost_usd"] == "0.020000"  # m1 has no pool
    assert by["free-first"]["free_calls"] == 4 and by["free-first"]["effective_cost_usd"] == "0.012000"
    assert by["free-first"]["list_cost_usd"] == "0.016000"


def test_quota_replay_bad_config_is_config_error():
    pytest.importorskip("router.quota.spec")
    from benchmarks.quota_replay import quota_replay
    from router.errors import ConfigError

    t = _tiny([[1, 1]], [[0.1, 0.2]])
    with pytest.raises(ConfigError):
        quota_replay(t, np.zeros(1, int), np.ones((1, 2)), config={"quotas": [{"id": "x"}]})


# ------------------------------------------------------------------ learned router


@pytest.mark.parametrize("kind", ["knn", "ridge", "logistic", "mlp"])
def test_learned_beats_random_on_synthetic_signal(kind):
    from benchmarks import metrics as M
    from benchmarks.learned import train

    ds = synthetic(240, seed=1)
    tr, te = split(ds, 0.3, seed=0)
    hp = {"knn": {"k": 10}, "ridge": {"alpha": 1.0}, "logistic": {"steps": 80}, "mlp": {"steps": 60, "l2": 1e-3, "hidden": 16}}[kind]
    pred = train(tr, kind, dim=512, **hp)
    P = pred.predict_texts(te.prompts, te.task_kinds())
    prior = np.tile(tr.quality.mean(0), (te.n_prompts, 1))
    assert ((P - te.quality) ** 2).mean() < 0.8 * ((prior - te.quality) ** 2).mean()
    _q, chat = R.profile_estimates(tr, te)
    learned = R.learned_sweep(P, chat, te, "learned")
    rand = next(r for r in R.baselines(tr, te) if r.name == "random")
    xs, ys = M.nondecreasing_hull([r.cost_usd for r in learned], [r.quality for r in learned])
    assert M.hull_quality_at(xs, ys, rand.cost_usd) > rand.quality + 0.1


def test_predictor_save_load_and_protocol(tmp_path):
    from benchmarks.learned import train
    from router.predictor import LearnedPredictor

    ds = synthetic(90)
    ds.models = ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat", "x-model"]
    pred = train(ds, "ridge", dim=256)
    npz, js = pred.save(str(tmp_path / "m" / "router.npz"))
    assert json.load(open(js))["format"] == "quotaroute-learned/1"
    back = LearnedPredictor.load(str(tmp_path / "m" / "router"))
    np.testing.assert_allclose(back.predict_texts(ds.prompts[:5], ["code"] * 5), pred.predict_texts(ds.prompts[:5], ["code"] * 5))
    feats = types.SimpleNamespace(task="reasoning")
    out = back.predict(feats, "hard question", ["openai:gpt-4-1106-preview", "x-model", "unknown:model"])
    assert set(out) == {"openai:gpt-4-1106-preview", "x-model"} and all(0 <= v <= 1 for v in out.values())
    assert back.predict(feats, "hi", ["unknown:model"]) is None
    with open(npz, "rb") as fh:  # plain npz, loadable without pickle
        np.load(fh, allow_pickle=False).close()


def test_predictor_satisfies_router_protocol():
    tasks = pytest.importorskip("router.tasks")
    from benchmarks.learned import train

    pred = train(synthetic(30), "knn", dim=128)
    assert isinstance(pred, tasks.QualityPredictor)


@pytest.mark.parametrize("ext", ["json", "yaml"])
def test_export_profile_loads_as_catalog_profile(tmp_path, ext):
    from benchmarks.learned import export_profile, train

    ds = synthetic(90)
    ds.models = ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat", "openai:gpt-4o-mini"]
    pred = train(ds, "ridge", dim=256)
    path = str(tmp_path / f"profile.{ext}")
    res = export_profile(pred, ds, path)
    catalog = pytest.importorskip("router.catalog")
    data = catalog.load_profile(path)  # the catalog's own validating reader
    assert set(data) == {"openai:gpt-4-1106-preview", "mistral:open-mixtral-8x7b", "openai:gpt-4o-mini"}
    assert set(data["openai:gpt-4o-mini"]) == {"reasoning", "code"}
    assert res["catalog_checked"] and "openai:gpt-4o-mini" not in res["not_in_catalog"]
    cat = catalog.load_catalog(profile_path=path)
    assert cat.get("openai:gpt-4o-mini").task_quality["code"] == data["openai:gpt-4o-mini"]["code"]
