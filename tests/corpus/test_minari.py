"""The Minari export loads back through Minari with the same data."""

import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.world import task

minari = pytest.importorskip("minari")


def test_minari_round_trip(tmp_path):
    from simulacra.corpus.minari_export import export_minari, load_minari

    c = make_corpus(task("offswitch", reward_delay=1), parse_mixture("seeker:1,random:1"), 24, seed=4)
    export_minari(c, "simulacra/offswitch-test-v0", root=tmp_path)
    ds = load_minari("simulacra/offswitch-test-v0", root=tmp_path)
    assert ds.total_episodes == c.n_episodes and ds.total_steps == c.n_transitions
    obs = c.observations()
    for ep in ds.iterate_episodes():
        i, n = ep.id, int(c.episodes.length[ep.id])
        assert np.array_equal(ep.observations, obs[i, : n + 1].reshape(n + 1, -1))  # flat, as the Gymnasium adapter
        assert ds.observation_space.contains(ep.observations[0])
        assert np.array_equal(ep.actions, c.episodes.actions[i, :n])
        np.testing.assert_allclose(ep.rewards, c.episodes.reward[i, :n], rtol=1e-6)
        assert bool(ep.terminations[-1]) == bool(c.episodes.terminated[i]) and bool(ep.truncations[-1]) == bool(c.episodes.truncated[i])
        assert not ep.terminations[:-1].any()
        np.testing.assert_allclose(ep.infos["true_reward"][1:], c.episodes.true_reward[i, :n], rtol=1e-6)
        assert np.array_equal(ep.infos["event_coin"][1:], c.episodes.events[i, :n, 0])
    with pytest.raises(ValueError, match="already exists"):
        export_minari(c, "simulacra/offswitch-test-v0", root=tmp_path)


def test_cli_export(tmp_path):
    from typer.testing import CliRunner

    from simulacra.cli import app

    runner = CliRunner()
    c = make_corpus(task("coin-7x7"), parse_mixture("seeker"), 8)
    c.save(tmp_path / "c")
    r = runner.invoke(app, ["corpus", "export", str(tmp_path / "c"), "--minari", "simulacra/coin-v0", "--root", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "8 episodes" in r.output
    r = runner.invoke(app, ["corpus", "export", str(tmp_path / "c"), "--minari", "simulacra/coin-v0", "--root", str(tmp_path / "m")])
    assert r.exit_code == 2 and "already exists" in r.output
