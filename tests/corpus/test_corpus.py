"""Corpus generation and storage: reproducible, verified on load, never half-written."""

import json
import os

import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import Corpus, CorpusError, make_corpus
from simulacra.corpus.generate import generate_arrays
from simulacra.world import task

MIX = parse_mixture("seeker(0.1):0.5,random:0.5")


@pytest.fixture(scope="module")
def small():
    return make_corpus(task("coin-7x7"), MIX, 300, seed=1, batch=128, store_obs=True)


def test_arrays_are_consistent(small):
    a = small.arrays
    n, t = small.n_episodes, small.horizon
    assert a["actions"].shape == (n, t) and a["states"].shape == (n, t + 1, 4) and a["obs"].shape == (n, t + 1, 7, 7, 3)
    m = small.mask
    assert np.all(a["reward"][~m] == 0) and np.all(~a["events"][~m])
    np.testing.assert_allclose(a["return"], a["reward"].sum(1), rtol=1e-6)
    np.testing.assert_allclose(a["rtg"][:, 0], a["return"], rtol=1e-5, atol=1e-6)
    assert np.all(a["terminated"] ^ a["truncated"])
    # every coin ends its episode in this one-coin world; the return is the coin
    assert np.all(a["events"][..., 0].sum(1) == a["terminated"])
    assert np.all(a["optimal_return"] == 1.0)
    seekers = a["character"] == 0
    assert a["return"][seekers].mean() > a["return"][~seekers].mean()
    assert 0.4 < seekers.mean() < 0.6


def test_derived_observations_equal_stored_ones(small):
    derived = make_corpus(task("coin-7x7"), MIX, 300, seed=1, batch=128).observations(slice(0, 40))
    assert np.array_equal(derived, small.observations(slice(0, 40)))


def test_same_seed_same_corpus_whatever_the_scheduling(small):
    for kw in (dict(batch=64), dict(batch=100, phase=5, wave=128), dict(batch=512, phase=64)):
        other = generate_arrays(task("coin-7x7"), MIX, 300, seed=1, store_obs=True, **kw)
        assert all(np.array_equal(small.arrays[k], other[k]) for k in other), kw
    third = generate_arrays(task("coin-7x7"), MIX, 300, seed=2, batch=64)
    assert not np.array_equal(small.arrays["actions"], third["actions"])


def test_save_load_round_trip(small, tmp_path):
    small.save(tmp_path / "c")
    back = Corpus.load(tmp_path / "c")
    assert back.params == small.params and back.mixture == small.mixture and back.seed == 1
    assert all(np.array_equal(back.arrays[k], small.arrays[k]) for k in small.arrays)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["schema_version"] == 2 and len(manifest["arrays"]["actions"]["sha256"]) == 64


def _saved(small, tmp_path):
    path = tmp_path / "c"
    small.save(path)
    return path


def test_a_flipped_byte_fails_to_load(small, tmp_path):
    path = _saved(small, tmp_path)
    f = path / "actions.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match="checksum mismatch for 'actions.npy'"):
        Corpus.load(path)


def test_a_missing_array_fails_to_load(small, tmp_path):
    path = _saved(small, tmp_path)
    os.remove(path / "reward.npy")
    with pytest.raises(CorpusError, match="'reward.npy' .* is missing"):
        Corpus.load(path)


def test_a_wrong_schema_version_fails_to_load(small, tmp_path):
    path = _saved(small, tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    m["schema_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="schema version 99; this simulacra reads version 2"):
        Corpus.load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CorpusError, match="not valid JSON"):
        Corpus.load(path)
    with pytest.raises(CorpusError, match="no manifest.json"):
        Corpus.load(tmp_path)


def test_an_interrupted_write_leaves_nothing_loadable_and_keeps_the_old_corpus(small, tmp_path, monkeypatch):
    path = _saved(small, tmp_path)
    before = sorted(os.listdir(tmp_path))
    calls = {"n": 0}
    real_save = np.save

    def dying_save(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed mid-write")
        return real_save(*args, **kw)

    monkeypatch.setattr(np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        small.save(path, overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        calls["n"] = 0
        small.save(tmp_path / "fresh")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == before  # no temporary leftovers, no "fresh"
    assert Corpus.load(path).n_episodes == small.n_episodes  # the old corpus is intact
    with pytest.raises(CorpusError, match="already exists"):
        small.save(path)


def test_manifests_cannot_point_outside_or_lie_about_arrays(small, tmp_path):
    path = _saved(small, tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    bad = json.loads(json.dumps(m))
    bad["arrays"]["actions"]["file"] = "../outside.npy"
    (path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CorpusError, match="not a plain file name"):
        Corpus.load(path)
    bad = json.loads(json.dumps(m))
    bad["arrays"]["actions"] = "actions.npy"
    (path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CorpusError, match="entry for array 'actions' is malformed"):
        Corpus.load(path)
    bad = json.loads(json.dumps(m))
    bad["mixture"] = ["seeker"]
    (path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CorpusError, match="world or mixture is invalid"):
        Corpus.load(path)
    # an array with the wrong dtype, its manifest entry updated to match
    states = np.load(path / "states.npy").astype(np.float64)
    np.save(path / "states.npy", states)
    from simulacra.corpus.store import sha256_file

    bad = json.loads(json.dumps(m))
    bad["arrays"]["states"].update(dtype="float64", sha256=sha256_file(path / "states.npy"))
    (path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CorpusError, match="array 'states' is float64"):
        Corpus.load(path)


def test_overwrite_replaces_only_a_simulacra_corpus(small, tmp_path):
    other = tmp_path / "app"
    other.mkdir()
    (other / "manifest.json").write_text('{"name": "my web app"}')
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="not a simulacra corpus"):
        small.save(other, overwrite=True)
    assert (other / "precious.txt").read_text() == "keep me"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CorpusError, match="is not a directory"):
        small.save(tmp_path / "afile" / "sub")


def test_subsets_and_coin_cells_and_content_hash(small):
    cells = small.coin_cells()
    obs = small.observations()
    w = small.params.width
    for i in range(20):  # the coin cell read from the scene is where the observation shows the coin
        r, c = divmod(int(cells[i, 0]), w)
        assert obs[i, 0, r, c, 0] == 2  # Tile.COIN
    held = cells[:, 0] % 3 == 0
    part = small.subset(~held)
    assert part.n_episodes == int((~held).sum()) and not np.isin(part.coin_cells()[:, 0] % 3, [0]).any()
    assert part.path is None and part.params == small.params
    assert part.content_hash() != small.content_hash()
    assert small.subset(np.arange(small.n_episodes)).content_hash() == small.content_hash()


def test_top_fraction_keeps_the_best_returns_and_records_its_parent(small, tmp_path):
    from simulacra.corpus import top_fraction

    ret = small.episodes.return_
    top = top_fraction(small, 0.1)
    assert top.n_episodes == 30 and top.filter == {"top": 0.1, "per_character": False}
    assert top.episodes.return_.min() >= np.sort(ret)[::-1][29]  # the 30 highest returns
    # ties (many episodes return 1) go to the lower episode index, in the original order
    expected = np.sort(np.argsort(-ret, kind="stable")[:30])
    np.testing.assert_array_equal(top.episodes.states, small.episodes.states[expected])
    per = top_fraction(small, 0.1, per_character=True)
    for i in range(2):
        mine = ret[small.episodes.character == i]
        k = int(np.ceil(0.1 * len(mine)))
        kept = per.episodes.return_[per.episodes.character == i]
        assert len(kept) == k and kept.min() >= np.sort(mine)[::-1][k - 1]  # each character's own best
    small.save(tmp_path / "parent")
    parent = Corpus.load(tmp_path / "parent")
    assert parent.parent is None and parent.filter is None  # a corpus made as before has no lineage
    assert "parent" not in json.loads((tmp_path / "parent" / "manifest.json").read_text())
    top_fraction(parent, 0.5).save(tmp_path / "top")
    loaded = Corpus.load(tmp_path / "top")
    assert loaded.parent == {"sha256": small.content_hash(), "path": str(tmp_path / "parent")}
    assert loaded.filter == {"top": 0.5, "per_character": False} and loaded.n_episodes == 150
    with pytest.raises(ValueError, match="top fraction"):
        top_fraction(small, 0.0)
