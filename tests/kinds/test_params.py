"""Each kind's params map onto its training config by name: a param that is meant to reach the
config and is misspelt (or renamed in the config) would be dropped silently by
`model_dump(include=...)` while still changing the unit id, so the names are checked here."""

import dataclasses

import simulacra.kinds  # noqa: F401  (registers the kinds)
from simulacra.kinds import inputs
from simulacra.kinds.reinforce import PPO_FIELDS, ReinforceParams
from simulacra.studies import PROCESSES

MODEL, TUNED = inputs.PREDICT_FIELDS, inputs.PREDICT_FIELDS | inputs.FINETUNE_FIELDS
# per kind: the training configs its params map onto, and the params it reads itself
KINDS = {
    "reinforce": (PPO_FIELDS, {"greedy"}),
    "oracle_ppo": (PPO_FIELDS, {"greedy"}),
    "oracle_dt": (MODEL, {"temperature", "target"}),
    "predict": (MODEL, {"temperature"}),
    "condition": (MODEL, {"temperature", "target"}),
    "finetune": (TUNED, {"ft_lr", "pretrained"}),
    "layers": (TUNED, {"ft_lr", "pretrained", "layer"}),
    "probe": (TUNED, {"ft_lr", "pretrained", "source", "probe", "layer", "probe_episodes"}),
    "steer": (MODEL, {"temperature", "toward", "away", "k", "layer"}),
    "onset": (PPO_FIELDS, {"greedy", "gamma_low", "gamma_high", "gamma_points", "event"}),  # the grid's γ is traced
    "myopia": (MODEL, {"heldout", "hidden_threshold"}),  # myopic is set per model of the pair
    "lookahead": (MODEL, {"offsets", "targets", "heldout"}),
    "text_traits": (MODEL, {"personas", "documents", "corpus_seed", "grammar", "heldout", "trained", "labels", "pair"}),
    "text_steer": (MODEL, {"personas", "documents", "corpus_seed", "grammar", "heldout", "steer_k", "trait", "generated"}),
    "text_finetune": (MODEL | {"beta", "updates"}, {"personas", "documents", "corpus_seed", "grammar", "heldout", "ft_documents", "ft_lr",
                                                    "layer", "direction"}),  # fmt: skip
    "text_critic": (MODEL | {"beta", "updates", "critic", "gamma", "approval", "judge"},
                    {"personas", "documents", "corpus_seed", "grammar", "heldout", "ft_documents", "ft_lr", "generated"}),  # fmt: skip
}


def test_every_param_reaches_its_training_config_or_is_the_kinds_own():
    assert set(KINDS) == {k for k in PROCESSES if PROCESSES[k].run.__module__.startswith("simulacra.kinds.")}
    for name, (config, own) in KINDS.items():
        outside = set(PROCESSES[name].params.model_fields) - config
        assert outside == own, f"kind {name!r}: params outside its training config: {sorted(outside)}, expected {sorted(own)}"


def test_params_map_to_the_configs_they_name():
    p = ReinforceParams(total_steps=4096, gamma=0.9)
    ppo = p.ppo_config()
    assert (ppo.total_steps, ppo.gamma) == (4096, 0.9)
    dt = PROCESSES["condition"].params(d_model=48, steps=7, warmup=3, grid=True, rtg_numeric=True, loss_on="trajectory")
    config = dt.predict_config()
    assert config.rtg and (config.d_model, config.steps, config.warmup, config.grid, config.rtg_numeric, config.loss_on) == (
        48, 7, 3, True, True, "trajectory",
    )  # fmt: skip
    ft = PROCESSES["finetune"].params(ft_lr=0.005, beta=2.0, updates=3, episodes=8, temperature=0.0)
    tuning = ft.finetune_config()
    assert (tuning.lr, tuning.beta, tuning.updates, tuning.episodes) == (0.005, 2.0, 3, 8) and tuning.temperature == 1e-3
    assert dataclasses.asdict(ft.predict_config())["lr"] == ft.lr  # pretraining keeps its own learning rate
    pair = PROCESSES["myopia"].params(d_model=24, steps=9, warmup=2, future_heads=2).configs()
    assert [c.myopic for c in pair] == [False, True] and {(c.d_model, c.steps, c.future_heads) for c in pair} == {(24, 9, 2)}
    look = PROCESSES["lookahead"].params(future_heads=4, myopic=True, offsets=[4, 1, 1]).predict_config()
    assert (look.future_heads, look.myopic) == (4, True)
    assert PROCESSES["lookahead"].params(offsets=[4, 1, 1]).offsets == (1, 4)
    graded = PROCESSES["text_critic"].params(critic="judge", gamma=0.5, approval=1.0, judge="friendly", beta=0.3, updates=4, ft_documents=6,
                                             ft_lr=0.002).finetune_config()  # fmt: skip
    assert (graded.critic, graded.gamma, graded.approval, graded.judge, graded.beta, graded.updates, graded.documents, graded.lr) == (
        "judge", 0.5, 1.0, "friendly", 0.3, 4, 6, 0.002,
    )  # fmt: skip
