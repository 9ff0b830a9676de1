"""The token vocabulary and the state encoding."""

import jax
import numpy as np

from simulacra.world import Vocab, decode, encode, is_valid, reset, task
from simulacra.world.tokens import describe, scene_length, state_length

from .helpers import act, tree_equal


def test_vocabulary_ranges_are_disjoint_and_cover_the_vocabulary():
    spans = sorted(getattr(Vocab, n) for n in Vocab.RANGES)
    assert spans[0][0] == 3
    for (a, na), (b, _) in zip(spans, spans[1:]):
        assert a + na == b
    assert spans[-1][0] + spans[-1][1] == Vocab.SIZE


def test_encoding_lengths_and_readable_names():
    p = task("full")
    s = reset(jax.random.PRNGKey(0), p)
    scene, toks = encode(s, p)
    assert scene.shape == (scene_length(p),) == (2 + 60,)
    assert toks.shape == (state_length(p),) == (4 + 3,)
    assert describe(scene[:3]) == ["NUM(6)", "NUM(10)", "TILE(wall)"]
    assert describe(toks) == ["CELL(1,1)", "COINS(1)", "FLAGS(0)", "NUM(0)", "RCODE(0)", "RCODE(0)", "RCODE(0)"]
    assert Vocab.describe(Vocab.ACTION[0] + 4) == "ACTION(stay)"
    assert Vocab.describe(Vocab.SIZE) == f"INVALID({Vocab.SIZE})"


def test_round_trip_mid_episode_with_delay_key_and_sparse():
    for p, moves in [
        (task("full"), ["down", "down", "right", "right"]),
        (task("keydoor"), ["down", "down"]),
        (task("tamper", sparse=True), ["right"] * 4),
    ]:
        states, _ = act(p, moves)
        for s in states:
            assert tree_equal(decode(*encode(s, p), p), s)


def test_is_valid_rejects_corrupted_tokens():
    p = task("coin-7x7", n_obstacles=2)
    s = reset(jax.random.PRNGKey(1), p)
    scene, toks = encode(s, p)
    assert bool(is_valid(scene, toks, p))
    wall_cell = Vocab.CELL[0] + 0  # (0, 0) is a wall
    bad = [
        (scene, toks.at[0].set(wall_cell)),  # agent inside a wall
        (scene, toks.at[0].set(Vocab.CELL[0] + 7 * 15 + 1)),  # agent outside the 7x7 grid
        (scene, toks.at[1].set(Vocab.COINS[0] + 2)),  # more coins alive than exist
        (scene, toks.at[3].set(Vocab.NUM[0] + p.horizon + 1)),  # time beyond the horizon
        (scene, toks.at[2].set(Vocab.PAD)),  # a pad where the flags go
        (scene.at[0].set(Vocab.NUM[0] + 9), toks),  # wrong height
        (scene.at[2 + 8].set(Vocab.TILE[0] + 3), toks),  # lava where the map has floor
        (scene.at[2 + 0].set(Vocab.TILE[0] + 0), toks),  # floor where the map has a wall
    ]
    for sc, tk in bad:
        assert not bool(is_valid(sc, tk, p))
    coin = int(np.flatnonzero(np.asarray(scene) == Vocab.TILE[0] + 2)[0])
    assert not bool(is_valid(scene.at[coin].set(Vocab.TILE[0]), toks, p))  # a coin missing


def test_is_valid_rejects_states_the_world_cannot_reach():
    # coins fixed: a coin off its map cell
    p = task("coin-fixed-7x7")
    s = reset(jax.random.PRNGKey(0), p)
    scene, toks = encode(s, p)
    coin = int(np.flatnonzero(np.asarray(scene) == Vocab.TILE[0] + 2)[0])
    moved = scene.at[coin].set(Vocab.TILE[0]).at[coin - 1].set(Vocab.TILE[0] + 2)
    assert not bool(is_valid(moved, toks, p))
    # the agent on a live coin
    states, _ = act(p, ["stay"])
    scene, toks = encode(states[0], p)
    cr, cc = np.asarray(states[0].coins)[0]
    assert not bool(is_valid(scene, toks.at[0].set(Vocab.CELL[0] + cr * 15 + cc), p))
    # flags for pieces the map lacks
    assert not bool(is_valid(scene, toks.at[2].set(Vocab.FLAGS[0] + 3), p))
    # keydoor: on the door without the key; a fixed start elsewhere at t = 0
    p = task("keydoor")
    s = reset(jax.random.PRNGKey(0), p)
    scene, toks = encode(s, p)
    assert bool(is_valid(scene, toks, p))
    on_door = toks.at[0].set(Vocab.CELL[0] + 2 * 15 + 4).at[3].set(Vocab.NUM[0] + 5)
    assert not bool(is_valid(scene, on_door, p))
    assert bool(is_valid(scene, on_door.at[2].set(Vocab.FLAGS[0] + 2), p))
    assert not bool(is_valid(scene, toks.at[0].set(Vocab.CELL[0] + 1 * 15 + 2), p))  # t = 0 off the start
    # wrong lengths give False, not an exception
    assert not bool(is_valid(scene[:-1], toks, p)) and not bool(is_valid(scene, toks[:-1], p))
