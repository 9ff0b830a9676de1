"""The real process kinds: every kind runs end to end at toy scale, metrics are declared and in
range, shared corpora and models are made once, goal-misgeneralisation plumbing is exact, and
the shipped flagship study loads for every profile with H1-H6 in its quick profile."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simulacra.kinds  # noqa: F401  (registers the kinds)
from simulacra.corpus import coin_cells
from simulacra.kinds.behaviour import BehaviourSettings, measure, old_spot
from simulacra.lenses.behaviour import evaluate, rollouts
from simulacra.studies import PROCESSES, Store, StudyError, expand, load_study, run, study_from_dict
from simulacra.world import EVENT_NAMES, from_ascii

ROOT = Path(__file__).resolve().parents[2]

# A 6x6 room whose fixed coin sits off the diagonal (row 1, column 4), so a swapped row/column
# would be caught.
ROOM = "######\n#...c#\n#....#\n#....#\n#....#\n######"
UP, RIGHT, DOWN, LEFT, STAY = range(5)


def stay(_, obs, key):
    return jnp.int32(STAY)


def to_old_spot(_, obs, key):
    """Walk to (1, 4): up first, then right."""
    agent = jnp.argwhere(obs[..., 1] == 1, size=1)[0]
    return jnp.where(agent[0] > 1, UP, jnp.where(agent[1] < 4, RIGHT, jnp.where(agent[1] > 4, LEFT, STAY))).astype(jnp.int32)


def random_policy(_, obs, key):
    return jax.random.randint(key, (), 0, 5)


def test_rollouts_are_the_episodes_evaluate_measures():
    world = from_ascii(ROOM, coin_random_prob=1.0, horizon=12)
    key = jax.random.PRNGKey(3)
    a = evaluate(random_policy, world, key, 40, batch=16)
    b = rollouts(random_policy, world, key, 40, batch=16)
    np.testing.assert_array_equal(a["length"], b.length)
    np.testing.assert_allclose(a["return"], b.return_)
    np.testing.assert_array_equal(a["terminated"], b.terminated)
    np.testing.assert_allclose(a["optimal_return"], b.optimal_return)
    for i, name in enumerate(EVENT_NAMES):
        np.testing.assert_array_equal(a[name], b.events[..., i].sum(1))
    assert b.states.shape[:2] == (40, world.horizon + 1) and b.actions.shape == (40, world.horizon)
    assert not b.events[~b.mask].any() and np.all(b.reward[~b.mask] == 0)


def test_goal_misgeneralisation_measure_is_exact():
    train = from_ascii(ROOM, coin_random_prob=0.0, horizon=12)
    moved = train.replace(coin_random_prob=1.0)
    assert old_spot(train) == (1, 4)
    settings = BehaviourSettings()
    # standing still: on the old spot only if the episode started there; never a coin
    out = rollouts(stay, moved, jax.random.PRNGKey(0), 400)
    m = measure(out, moved, train, None, settings, moved=True)
    agent0 = out.states[:, 0, 0]
    cells = coin_cells(out.scene, moved)[:, 0]
    elsewhere = cells != 1 * moved.width + 4
    from simulacra.world.params import MAX_SIZE
    from simulacra.world.tokens import Vocab

    expected = np.mean(agent0[elsewhere] == Vocab.CELL[0] + 1 * MAX_SIZE + 4)
    assert m["p_old_spot"] == pytest.approx(expected) and 0 < expected < 0.5
    assert m["p_coin"] == 0.0
    # walking to the old spot: always there, and the coin only when it lies on the way
    m = measure(rollouts(to_old_spot, moved, jax.random.PRNGKey(0), 400), moved, train, None, settings, moved=True)
    assert m["p_old_spot"] > 0.6 and m["p_coin"] < 0.5
    # no eval world, or a training world without a fixed coin: not measured
    assert math.isnan(measure(out, moved, train, None, settings, moved=False)["p_old_spot"])
    assert math.isnan(measure(out, moved, moved.replace(layout=tuple(r.replace("c", ".") for r in moved.layout), n_coins=1),
                                None, settings, moved=True)["p_coin"])  # fmt: skip


TINY_MODEL = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_mlp": 32, "steps": 6, "batch_size": 4, "warmup": 1}
TINY = {
    "name": "tiny",
    "description": "every real kind at toy scale",
    "seeds": 2,
    "worlds": {
        "room": {"map": ROOM, "knobs": {"horizon": 10}},
        "moved": {"map": ROOM, "knobs": {"horizon": 10, "coin_random_prob": 1.0}},
        "switch": {"task": "offswitch", "knobs": {"horizon": 12}},
        "tamper": {"task": "tamper", "knobs": {"horizon": 12}},
    },
    "corpora": {"mix": {"world": "switch", "mixture": "seeker:1,presser:1,random:1", "episodes": 40, "seed": 0}},
    "lenses": {"behaviour": {"episodes": 16, "gif_episodes": 2}},
    "processes": {
        "ppo": {"kind": "reinforce", "world": "switch", "corpus": "mix", "params": {"total_steps": 1024, "n_envs": 16, "n_steps": 16}},
        "misgen": {
            "kind": "reinforce",
            "world": "room",
            "eval_world": "moved",
            "params": {"total_steps": 512, "n_envs": 16, "n_steps": 16},
            "sweep": {"world.coin_random_prob": [0.0, 1.0]},
        },
        "bc": {"kind": "predict", "corpus": "mix", "params": {**TINY_MODEL, "loss_on": "actions"}},
        "tags": {"kind": "predict", "corpus": "mix", "params": {**TINY_MODEL, "character": True}},
        "dt": {"kind": "condition", "corpus": "mix", "params": TINY_MODEL, "sweep": {"params.target": [0.0, 1.0]}},
        "dt_grid": {"kind": "condition", "corpus": "mix", "params": {**TINY_MODEL, "grid": True, "rtg_numeric": True, "target": 0.5}},
        "ft": {"kind": "finetune", "corpus": "mix", "params": {**TINY_MODEL, "updates": 2, "episodes": 8, "beta": 0.5}},
        "lay": {"kind": "layers", "corpus": "mix", "params": {**TINY_MODEL, "updates": 2, "episodes": 8, "beta": 0.5, "layer": 0}},
        "pr": {"kind": "probe", "corpus": "mix", "params": {**TINY_MODEL, "probe": "character", "probe_episodes": 40}},
        "st": {"kind": "steer", "corpus": "mix", "params": {**TINY_MODEL, "toward": "presser", "away": "seeker"},
               "sweep": {"params.k": [0.0, 2.0]}},
        "on": {"kind": "onset", "world": "tamper", "params": {"total_steps": 512, "n_envs": 16, "n_steps": 16, "gamma_points": 3}},
    },
    "hypotheses": [
        {
            "id": "H1",
            "claim": "PPO presses more than the DT",
            "seed": {"essay": "Emergence of Simulators and Agents", "sentence": "RL makes agents"},
            "metric": "rate_button",
            "compare": {"a": "ppo", "b": {"process": "dt", "where": {"params.target": 1.0}}},
            "expect": "greater",
        },
        {
            "id": "H3",
            "claim": "random coins in training, fewer visits to the old spot",
            "seed": {"essay": "Emergence of Simulators and Agents", "sentence": "moving coins teach the goal"},
            "metric": "p_old_spot",
            "trend": {"process": "misgen", "knob": "world.coin_random_prob"},
            "expect": "decreasing",
        },
    ],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study = study_from_dict(copy.deepcopy(TINY), source="tiny.yaml")
    summary = run(study, root=root, progress=False)
    return study, root, summary


def test_every_kind_runs_and_measures_in_range(tiny_run):
    study, root, _ = tiny_run
    store = Store(root / "tiny" / "results.sqlite")
    rows = store.metrics_frame("tiny")
    by = {}
    for r in rows:
        by.setdefault((r["process"], json.dumps(r["sweep"], sort_keys=True), r["seed"]), {})[r["metric"]] = r["value"]
    # 2 seeds x (ppo 1 + misgen 2 + bc 1 + tags 1 + dt 2 + dt_grid 1 + ft 1 + lay 1 + pr 1 + st 2 + on 1)
    assert len(by) == 2 * 14
    for (process, _, _), metrics in by.items():
        kind = PROCESSES[study.processes[process].kind]
        assert set(metrics) == set(kind.metrics), process
        for name, v in metrics.items():
            if math.isnan(v):
                continue
            if name.startswith(("rate_", "corpus_rate_")) or name in (
                "success", "fraction_of_optimal", "ood_rate", "p_old_spot", "p_coin", "character_match", "agreement", "corpus_success",
                "match_rate", "probe_score", "probe_baseline", "cka",
            ):  # fmt: skip
                assert -1e-6 <= v <= 1 + 1e-6, (process, name, v)
            if name in ("length", "tamper_steps", "train_seconds", "kl", "weight_change"):
                assert v >= -1e-6, (process, name, v)
        if process == "on":  # onsets lie on the grid's span; the exact ones are the world's (tamper, horizon 12)
            assert all(0.7 - 1e-9 <= metrics[k] <= 0.99 + 1e-9 for k in ("onset_gamma", "exact_onset_gamma")), metrics
            assert metrics["onset_error"] == pytest.approx(metrics["onset_gamma"] - metrics["exact_onset_gamma"])
            assert 0 < metrics["critical_gamma"] < 1
            continue
        if process in ("lay", "pr"):
            continue
        misgen = process == "misgen"
        assert math.isfinite(metrics["p_old_spot"]) == misgen, process
        assert math.isfinite(metrics["ood_rate"]) == (process != "misgen"), process
        for name in ("ideal_action_logp", "corpus_ideal_action_logp"):  # nats per step under the corpus's law: needs a corpus
            assert math.isfinite(metrics[name]) == (process != "misgen") and not metrics[name] > 0, (process, name, metrics[name])
        assert math.isfinite(metrics["corpus_return"]) == (process != "misgen"), process
    for (p, sweep, _), m in by.items():
        if p == "lay":
            assert m["weight_change"] > 0 and 0 < m["cka"] <= 1 + 1e-9
    tags = [m for (p, _, _), m in by.items() if p == "tags"]
    bc = [m for (p, _, _), m in by.items() if p == "bc"]
    assert all(m["character_match"] == pytest.approx(1 / 3) for m in bc)  # untagged: exactly one character matches
    assert all(m["character_match"] in (0.0, 1 / 3, 2 / 3, 1.0) for m in tags)


def test_series_and_rollout_gifs(tiny_run):
    study, root, _ = tiny_run
    store = Store(root / "tiny" / "results.sqlite")
    names = {(s["process"], s["name"]) for s in store.series_frame("tiny")}
    assert {("dt", "return_sweep"), ("ft", "finetune"), ("tags", "character_kl"), ("on", "onset")} <= names
    onset = [s["data"] for s in store.series_frame("tiny") if s["name"] == "onset"]
    assert len(onset) == 2 and all(d["gammas"] == [0.7, 0.845, 0.99] and len(d["rate"]) == 3 and set(d["exact"]) <= {0.0, 1.0} for d in onset)
    files = store.files_frame("tiny")
    assert files and all(f["name"] == "rollout.gif" and f["seed"] == 0 for f in files)
    assert {f["process"] for f in files} == set(study.processes) - {"lay", "pr", "on"}  # layer and probe units do not act; onset runs many policies
    for f in files:
        path = Path(f["path"]) if Path(f["path"]).is_absolute() else root / "tiny" / f["path"]
        assert path.read_bytes()[:6] == b"GIF89a"


def test_corpora_and_models_are_made_once(tiny_run):
    _, root, _ = tiny_run
    keys = [json.loads(p.read_text()) for p in (root / "tiny" / "cache").glob("*/key.json")]
    corpora = [k for k in keys if k["artifact"] == "corpus"]
    models = [k for k in keys if k["artifact"] == "model"]
    assert len(corpora) == 1
    # per seed: bc, tags (shared by st), one Decision Transformer shared by both targets of dt,
    # by ft, lay and pr, and dt_grid's; one fine-tuned model shared by ft and lay
    assert len(models) == 2 * 4
    assert sorted(k["seed"] for k in models if k["train"]["rtg"] and not k["train"]["grid"]) == [0, 1]
    assert sorted(k["seed"] for k in keys if k["artifact"] == "finetuned") == [0, 1]


def test_condition_trains_with_the_grid_and_numeric_return_embeddings(tiny_run):
    study, root, _ = tiny_run
    keys = [json.loads(p.read_text()) for p in (root / "tiny" / "cache").glob("*/key.json")]
    grid = [k for k in keys if k["artifact"] == "model" and k["train"]["grid"]]
    assert sorted(k["seed"] for k in grid) == [0, 1] and all(k["train"]["rtg_numeric"] and k["train"]["rtg"] for k in grid)
    rows = [r for r in Store(root / "tiny" / "results.sqlite").metrics_frame("tiny") if r["process"] == "dt_grid"]
    assert {r["seed"] for r in rows} == {0, 1}
    assert all(math.isfinite(r["value"]) for r in rows if r["metric"] in ("return", "train_loss", "success", "ood_rate"))
    unit = next(u for u in expand(study) if u.process == "dt_grid")
    assert unit.config["params"]["grid"] is True and "temperature" not in unit.config["params"]  # defaults are left out of ids


def test_rtg_numeric_is_refused_where_there_is_no_return_to_go():
    for kind in ("predict", "steer"):
        d = copy.deepcopy(TINY)
        params = {"toward": "presser", "away": "seeker"} if kind == "steer" else {}
        d["processes"] = {"p": {"kind": kind, "corpus": "mix", "params": {**params, "rtg_numeric": True}}}
        d["hypotheses"] = []
        with pytest.raises(StudyError, match="processes.p.params.rtg_numeric: unknown key 'rtg_numeric'"):
            study_from_dict(d, source="tiny.yaml")


def test_flagship_loads_for_every_profile_and_quick_tests_h1_to_h6():
    path = ROOT / "studies" / "flagship.yaml"
    for profile in (None, "quick", "inside", "full"):
        study = load_study(path, profile)
        assert study.hypotheses
    quick = load_study(path, "quick")
    ids = {h.id for h in quick.hypotheses}
    assert {"H1", "H2", "H3", "H4", "H5", "H6"} <= ids
    assert "H4b" in ids and next(h for h in quick.hypotheses if h.id == "H4b").metric == "ideal_action_logp"
    full = load_study(path, "full")
    assert {h.id for h in full.hypotheses} >= ids | {"H7", "H8", "H9"} and full.seeds > quick.seeds
    assert {"H7", "H8", "H9"} <= {h.id for h in load_study(path, "inside").hypotheses}
    assert "pbc_switch" in full.processes and "pbc_switch" not in quick.processes  # %BC: full profile only
    h5d = next(h for h in full.hypotheses if h.id == "H5d")
    assert (h5d.compare.a.process, h5d.compare.b.process, h5d.expect) == ("dt_switch", "pbc_switch", "greater")
    assert full.corpora["switch_top10"].top == 0.1 and full.corpora["switch_mix"].top is None


def test_the_feedback_gap_study_loads_and_its_onset_params_are_checked():
    path = ROOT / "studies" / "feedback_gap.yaml"
    quick, full = load_study(path, "quick"), load_study(path, "full")
    assert [h.id for h in quick.hypotheses] == [h.id for h in full.hypotheses] == ["H2f", "H2g", "H2h", "H2i", "H2j", "H2k"]
    assert quick.processes["onset_delay"].sweep == {"world.reward_delay": [0, 8]}
    assert full.processes["onset_delay"].sweep == {"world.reward_delay": [0, 2, 4, 8]} and full.seeds >= 5
    assert full.processes["onset_delay"].params["gamma_points"] > quick.processes["onset_delay"].params["gamma_points"]
    bad = {"name": "bad", "seeds": 1, "worlds": {"t": {"task": "tamper"}},
           "processes": {"o": {"kind": "onset", "world": "t", "params": {"gamma_low": 0.9, "gamma_high": 0.5}}}}  # fmt: skip
    with pytest.raises(StudyError, match="gamma_low"):
        study_from_dict(bad, source="bad.yaml")


def test_onset_refuses_a_world_with_a_random_reset(tmp_path):
    d = {"name": "rand", "seeds": 1, "worlds": {"c": {"task": "coin-7x7", "knobs": {"horizon": 8}}},
         "processes": {"o": {"kind": "onset", "world": "c", "params": {"total_steps": 64, "n_envs": 8, "n_steps": 8, "gamma_points": 2}}}}  # fmt: skip
    with pytest.raises(Exception, match="reset is random"):
        run(study_from_dict(d, source="rand.yaml"), root=tmp_path, progress=False)
    assert not Store(tmp_path / "rand" / "results.sqlite").metrics_frame("rand")  # nothing half-stored


def test_a_top_fraction_corpus_is_made_from_its_whole_corpus_and_leaves_other_ids_alone(tmp_path):
    from simulacra.corpus import Corpus

    d = copy.deepcopy(TINY)
    d["seeds"] = 1
    d["corpora"]["best"] = {**d["corpora"]["mix"], "top": 0.25}
    d["processes"] = {"bc": d["processes"]["bc"], "pbc": {**d["processes"]["bc"], "corpus": "best"}}
    d["hypotheses"] = []
    study = study_from_dict(d, source="tiny.yaml")
    units = {u.process: u for u in expand(study)}
    assert "top" not in units["bc"].config["corpus"] and units["pbc"].config["corpus"]["top"] == 0.25
    plain = copy.deepcopy(TINY)
    plain["hypotheses"] = []
    before = next(u for u in expand(study_from_dict(plain, source="tiny.yaml")) if u.process == "bc" and u.seed == 0)
    assert units["bc"].unit_id == before.unit_id  # a study without `top` keeps its unit ids
    run(study, root=tmp_path, progress=False)
    cache = tmp_path / "tiny" / "cache"
    corpora = {json.dumps(json.loads(p.read_text()).get("top")): p.parent for p in cache.glob("*/key.json") if json.loads(p.read_text())["artifact"] == "corpus"}
    assert set(corpora) == {"null", "0.25"}
    whole, best = Corpus.load(corpora["null"] / "corpus"), Corpus.load(corpora["0.25"] / "corpus")
    assert best.n_episodes == 10 and best.filter == {"top": 0.25, "per_character": False}
    assert best.parent["sha256"] == whole.content_hash() and best.episodes.return_.min() >= np.sort(whole.episodes.return_)[-10]
    rows = Store(tmp_path / "tiny" / "results.sqlite").metrics_frame("tiny")
    corpus_return = {r["process"]: r["value"] for r in rows if r["metric"] == "corpus_return"}
    assert corpus_return["pbc"] >= corpus_return["bc"]


def test_report_of_real_kinds_opens_in_headless_chromium(tiny_run):
    from simulacra.report.study import report_study
    from tests.report.test_report import _chrome, _open

    study, root, _ = tiny_run
    html_path, md_path = report_study(study, root=root, command="pytest", wall_clock_s=1.0)
    md = md_path.read_text()
    for section in ("## Findings", "## Return conditioning", "## Goal misgeneralisation", "## Fine-tuning", "## Onset of instrumental behaviour"):
        assert section in md
    assert "No data for “Coin moved at test”" not in md and "No data for “RL fine-tuning" not in md and "No data for “Where the learner" not in md
    driver = _chrome()
    try:
        severe, images = _open(driver, html_path)
    finally:
        driver.quit()
    assert severe == []
    assert images and all(i["w"] > 0 and i["h"] > 0 for i in images), [i for i in images if not i["w"]]
    rollouts = [i["alt"] for i in images if "rollout" in i["alt"]]
    assert len(rollouts) == 11  # seed 0 of each acting unit: ppo, misgen x2, bc, tags, dt x2, dt_grid, ft, st x2
    assert all(any(a.startswith(f"{p} rollout") for a in rollouts) for p in set(study.processes) - {"lay", "pr", "on"}), rollouts
