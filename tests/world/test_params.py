"""Maps and parameters: the legend, validation errors, serialisation."""

import json

import numpy as np
import pytest

from simulacra.world import LEGEND, TASKS, WorldParams, from_ascii, task

GOOD = """
#######
#A...c#
#.....#
#.....#
#######
"""


def test_from_ascii_reads_the_legend():
    p = from_ascii(
        """
        #########
        #A.L.I.B#
        #.T.K.D.#
        #c......#
        #########
        """
    )
    assert p.shape == (5, 9) and p.n_coins == 1
    assert set("".join(p.layout)) <= set(LEGEND)


@pytest.mark.parametrize(
    "text, message",
    [
        ("#######\n#A.x.c#\n#.....#\n#.....#\n#######", "unknown character 'x' at row 1, column 3"),
        ("#######\n#A...c#\n#....#\n#.....#\n#######", "ragged rows"),
        ("#####\n#####\n#####\n#####\n#####", "no free cell"),
        ("#######\n#A.#.c#\n#..#..#\n#..#..#\n#######", "coin at row 1, column 5 is unreachable"),
        ("#######\n#A.L.c#\n#..L..#\n#..L..#\n#######", "unreachable"),
        ("####\n#Ac#\n####", "size 3x4 is outside 5-15"),
        ("#######\n#A..Ac#\n#.....#\n#.....#\n#######", "2 agent starts"),
        ("#######\n#A.D.c#\n#.....#\n#.....#\n#######", "door 'D' without a key"),
        ("#######\n#A.#..#\n#..#K.#\n#..#.c#\n#######", "unreachable"),
        ("", "no rows"),
    ],
)
def test_malformed_maps_raise_one_clear_value_error(text, message):
    with pytest.raises(ValueError, match="malformed map") as e:
        from_ascii(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "knobs, field",
    [
        (dict(coin_random_prob=1.5), "coin_random_prob"),
        (dict(interrupt_prob=-0.1), "interrupt_prob"),
        (dict(horizon=0), "horizon"),
        (dict(horizon=10_000), "horizon"),
        (dict(reward_delay=-1), "reward_delay"),
        (dict(reward_delay=2, sparse=True), "reward_delay"),
        (dict(n_coins=3), "n_coins"),
        (dict(n_coins=9, coin_random_prob=1.0), "n_coins"),
        (dict(n_obstacles=-2), "n_obstacles"),
        (dict(step_cost=float("nan")), "step_cost"),
        (dict(n_obstacles=30), "free floor cells"),
    ],
)
def test_invalid_parameters_name_the_field(knobs, field):
    with pytest.raises(ValueError) as e:
        from_ascii(GOOD, **knobs)
    assert field in str(e.value)
    assert "\n" not in str(e.value)


def test_random_coins_may_exceed_the_map_coins():
    p = from_ascii(GOOD, n_coins=3, coin_random_prob=1.0)
    assert p.n_coins == 3


def test_obstacles_with_doors_are_refused():
    with pytest.raises(ValueError, match="doors"):
        task("keydoor", n_obstacles=2)


def test_params_are_hashable_and_round_trip_through_json():
    p = task("full")
    assert hash(p) == hash(task("full")) and p == task("full")
    q = WorldParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p
    with pytest.raises(ValueError, match="unknown WorldParams field"):
        WorldParams.from_dict({**p.to_dict(), "colour": "red"})


def test_replace_validates_again():
    with pytest.raises(ValueError, match="interrupt_prob"):
        task("offswitch").replace(interrupt_prob=2.0)


def test_every_named_task_builds_and_unknown_names_are_refused():
    for name in TASKS:
        assert task(name).name == name
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        task("nope")


@pytest.mark.parametrize(
    "knobs, field",
    [
        (dict(horizon=10.5), "horizon"),
        (dict(horizon=True), "horizon"),
        (dict(n_coins=1.7), "n_coins"),
        (dict(reward_delay=2.5), "reward_delay"),
        (dict(coin_reward=None), "coin_reward"),
        (dict(interrupt_prob="0.5"), "interrupt_prob"),
        (dict(sparse="yes"), "sparse"),
    ],
)
def test_wrong_types_are_refused(knobs, field):
    with pytest.raises(ValueError, match=f"invalid WorldParams.{field}="):
        from_ascii(GOOD, **knobs)


def test_bad_layout_objects_and_missing_layout():
    for bad in (123, None, [1, 2]):
        with pytest.raises(ValueError, match="invalid WorldParams.layout"):
            WorldParams(layout=bad)
    with pytest.raises(ValueError, match="needs a 'layout'"):
        WorldParams.from_dict({"horizon": 5})


def test_too_many_map_coins_names_the_map():
    with pytest.raises(ValueError, match="malformed map: 9 coins"):
        from_ascii("###########\n#Acccccccc#\n#c........#\n#.........#\n###########")


def test_keydoor_random_draws_the_start_and_the_key_in_the_keys_room():
    import jax

    from simulacra.world import reset

    params = task("keydoor-random")
    states = [reset(jax.random.PRNGKey(seed), params) for seed in range(64)]
    starts = {tuple(int(v) for v in s.agent) for s in states}
    keys = {tuple(int(v) for v in s.key[0]) for s in states}
    room = {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}  # left of the door
    assert starts == room - {(3, 1)}  # anywhere but the map's key cell
    assert keys == room  # the map's key cell or any floor cell of the room
    assert all(tuple(int(v) for v in s.agent) != tuple(int(v) for v in s.key[0]) for s in states)
    fixed = task("keydoor")
    assert {tuple(int(v) for v in reset(jax.random.PRNGKey(s), fixed).key[0]) for s in range(8)} == {(3, 1)}
    with pytest.raises(ValueError, match="key_random"):
        task("coin-7x7", key_random=True)
    # a world without the knob serialises as before (unit ids, corpus hashes), and round-trips either way
    assert "key_random" not in fixed.to_dict() and params.to_dict()["key_random"] is True
    assert WorldParams.from_dict(params.to_dict()) == params and WorldParams.from_dict(fixed.to_dict()) == fixed


def test_worlds_without_a_random_key_reset_exactly_as_before_it_existed():
    import jax

    from simulacra.world import reset

    p = task("coin-7x7")
    s = jax.vmap(lambda k: reset(k, p))(jax.random.split(jax.random.PRNGKey(5), 4))
    # recorded before `key_random` (commit 74f878f): its draw must not shift any other world's
    assert np.asarray(s.agent).tolist() == [[4, 2], [1, 3], [5, 4], [1, 3]]
    assert np.asarray(s.coins).tolist() == [[[2, 2]], [[1, 4]], [[1, 5]], [[5, 2]]]
