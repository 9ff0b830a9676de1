"""The report sections of the process kinds: each a provider `(ReportInputs) -> Section` that a
kind lists in its `sections`, so a report draws a figure only when its study runs a kind that
measures it (`simulacra.report.study` gathers them). They name what the kinds measure — metrics,
series and the knobs they sweep — which the report itself does not know.

To reproduce the report of every shipped kind at once:

    write_report(out, findings, rows, series, files, meta,
                 sections=[event_rates, return_conditioning, misgeneralisation, inside_the_network, finetuning])

A section whose data the study did not produce still appears, with a "No data" line saying
what was missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from simulacra.report import Figure, ReportInputs, Section
from simulacra.report import figures as F
from simulacra.report.document import Table, safe_name
from simulacra.report.sections import EVENT_RATE_PREFIX

RETURN_SWEEP = "return_sweep"
"""The simulator's series: achieved return per prompted target return."""
FINETUNE = "finetune"
"""The fine-tuning kind's series: return and KL per update."""
OLD_SPOT, COIN = "p_old_spot", "p_coin"
"""With the coin moved at test: P(goes to the coin's training spot), P(gets the coin)."""
LAYER_KNOB = "params.layer"
"""The block index the probe and layers kinds sweep."""
MYOPIA_GAP = "myopia_gap"
"""The myopia kind's metrics of the myopic model's extra excess log-loss (a prefix)."""
LOOKAHEAD_SERIES = "lookahead"
"""The look-ahead kind's series: probe scores per (block, target, offset)."""
ONSET_SERIES = "onset"
"""The onset kind's series: the event rate per discount, learned and exact."""


def event_rates(inputs: ReportInputs) -> Section:
    caption = (
        "Per event, the rate per episode for each process: bars are means over seeds with 95% intervals, "
        "points are single seeds (a seed's units averaged)."
    )
    png = F.event_rates(inputs.rows, EVENT_RATE_PREFIX, colours=inputs.colours)
    figure = Figure("event_rates", "Event rates", caption, png, f'no metric named "{EVENT_RATE_PREFIX}*"')
    return Section("Event rates by process", [figure])


ORACLE_CHOICES = ("rate_clue", "rate_fix", "rate_hedge")
"""The oracle kinds' choices (`kinds.oracle`), each with its exact optimum `optimal_<metric>`."""


def oracle_choices(inputs: ReportInputs) -> Section:
    caption = (
        "Prediction as the last step of an episode (H11): per process and sweep point, the share of episodes that take the "
        "clue (information), the fixer (control: it sets the hidden bit) and the hedge (no information), mean over seeds "
        "with 95% intervals and each seed as a point; black bars: what the exact optimum's own episodes do in the same world."
    )
    png = F.choice_rates(inputs.rows, ORACLE_CHOICES, "optimal_", title="Clue, fixer and hedge against the exact optimum")
    figure = Figure("oracle_choices", "Clue, fixer and hedge", caption, png, 'no metric named "rate_clue", "rate_fix" or "rate_hedge"')
    return Section("Prediction as the last step", [figure])


def return_conditioning(inputs: ReportInputs) -> Section:
    caption = (
        "Achieved return against the prompted target return, mean and 95% band over seeds, with the diagonal "
        "(achieved = target) and the corpus's best return."
    )
    png = F.conditioning_curves(inputs.series, RETURN_SWEEP, colours=inputs.colours)
    figure = Figure("return_conditioning", "Target vs achieved return", caption, png, f'no series named "{RETURN_SWEEP}"')
    return Section("Return conditioning", [figure])


def _misgeneralisation_knobs(inputs: ReportInputs) -> list[str]:
    """The knobs of the findings on `p_old_spot` or `p_coin` (their trends' knobs), else the sweep
    keys of the units that measured a finite `p_old_spot`."""
    knobs = [f["knob"] for f in inputs.findings if f["metric"] in (OLD_SPOT, COIN) and f["knob"]]
    if not knobs:
        measured = [r for r in inputs.rows if r["name"] == OLD_SPOT and math.isfinite(F.as_float(r.get("value")))]
        knobs = [k for r in measured for k in r.get("sweep") or {}]
    return list(dict.fromkeys(knobs))


def misgeneralisation(inputs: ReportInputs) -> Section:
    title = "Coin moved at test"
    knobs = _misgeneralisation_knobs(inputs)
    if not knobs:
        return Section("Goal misgeneralisation", [Figure("misgeneralisation", title, "", None, f'no "{OLD_SPOT}" or "{COIN}" measured')])
    figures = []
    for knob in knobs:
        caption = (
            "With the coin moved at test time: the probability of going to the coin's training spot (dashed) and of getting "
            f"the coin (solid), against the probability {knob} that the coin was placed at random in training."
        )
        png = F.misgeneralisation_curve(inputs.rows, knob, OLD_SPOT, COIN, colours=inputs.colours)
        missing = f'no "{OLD_SPOT}" or "{COIN}" measured on units sweeping {knob}'
        figures.append(Figure(f"misgeneralisation_{safe_name(knob)}", title, caption, png, missing))
    return Section("Goal misgeneralisation", figures, knobs=tuple(knobs))


def inside_the_network(inputs: ReportInputs) -> Section:
    caption = (
        "For each probed process: the linear probe's cross-validated score after each block (accuracy, or R² for return "
        "to go), the same probe on a randomly initialised model of the same architecture (dashed) and on a Hewitt & Liang "
        "control task (dotted; selectivity is score minus control). Then, between a simulator and its RL fine-tuned self: "
        "relative weight change, linear CKA and transplant gain per block. Mean and 95% band over seeds."
    )
    png = F.layer_profiles(inputs.rows, LAYER_KNOB, colours=inputs.colours)
    missing = f"no probe or layer-change metric measured on units sweeping {LAYER_KNOB}"
    return Section("Inside the network", [Figure("layers", "Block by block", caption, png, missing)], knobs=(LAYER_KNOB,))


def finetuning(inputs: ReportInputs) -> Section:
    caption = "Per update: the return of the fine-tuned simulator (dotted: true return) and its KL to the pretrained simulator."
    png = F.finetune_curves(inputs.series, FINETUNE, colours=inputs.colours)
    figure = Figure("finetune", "RL fine-tuning of a simulator", caption, png, f'no series named "{FINETUNE}"')
    return Section("Fine-tuning", [figure])


def onset_curves(inputs: ReportInputs) -> Section:
    caption = (
        "Left: the share of evaluation episodes with the event against the discount γ PPO was trained with, one line per "
        "process and sweep point (mean and 95% band over seeds), and dashed in the same colour the exact optimum of the "
        "observed reward (1 where it needs the event; dynamic programming on the world's law). Right: the step-equivalent "
        "onset of each line, per seed (points) and mean with its 95% interval, against the exact optimum's on the same grid "
        "(diamond) and the exact critical discount γ* (cross)."
    )
    png = F.onset_curves(inputs.series, ONSET_SERIES)
    figure = Figure("onset", "Where the learner turns instrumental", caption, png, f'no series named "{ONSET_SERIES}"')
    return Section("Onset of instrumental behaviour", [figure])


def myopia_gaps(inputs: ReportInputs) -> Section:
    caption = (
        "The myopia gap: the myopic simulator's excess log-loss over the corpus's exact ideal minus the ordinary one's, "
        "on held-out episodes, over all scored tokens, on action tokens, and on the action tokens of steps where only the "
        "history shows the acting character (hidden). Bars: mean over seeds with 95% intervals; points: seeds."
    )
    names = {MYOPIA_GAP: "all tokens", f"{MYOPIA_GAP}_actions": "actions", f"{MYOPIA_GAP}_hidden": "actions at hidden steps"}
    png = F.event_rates(inputs.rows, MYOPIA_GAP, colours=inputs.colours, ylabel="nats/token, myopic − ordinary",
                        title="The myopia gap by process", tick=lambda e: names.get(e, e))  # fmt: skip
    figure = Figure("myopia_gap", "The myopia gap", caption, png, f'no metric named "{MYOPIA_GAP}*"')
    return Section("Myopic training", [figure])


def lookahead_curves(inputs: ReportInputs) -> Section:
    caption = (
        "How far ahead the residual stream predicts: the cross-validated accuracy of a linear probe for the action, the "
        "agent's cell and the event k steps ahead, read after each block, against the offset k; one line per process and "
        "sweep point (mean over seeds). Dashed: the same probe on the ideal predictor's sufficient statistic (the ceiling); "
        "dotted: on a randomly initialised model."
    )
    png = F.lookahead_curves(inputs.series, LOOKAHEAD_SERIES, colours=inputs.colours)
    figure = Figure("lookahead", "Look-ahead by offset and block", caption, png, f'no series named "{LOOKAHEAD_SERIES}"')
    return Section("Look-ahead", [figure])


def text_personas(inputs: ReportInputs) -> Section:
    """The text world's figures: trait probes against the ideal, and steering against the law."""
    bars = F.trait_bars(inputs.series, "trait_probes")
    probes = Figure("trait_probes", "Traits read from the last block",
                    "Per trait of the speaking persona: a linear probe's cross-validated accuracy at the last block, per process and "
                    "sweep point (mean over seeds), beside the ideal's Bayes accuracy from the words so far (the ceiling of any reader "
                    "of the prefix) and the majority rate.", bars, 'no series named "trait_probes"')  # fmt: skip
    steer = F.steering_against_law(inputs.rows, colours=inputs.colours)
    steering = Figure("steering_law", "Steering against the exact law",
                      "Swear words per generated document against the coefficient of the trait direction added at the last block "
                      "(mean and 95% interval over seeds); dashed: the exact expected rate of the corpus's mixture, dotted: of its "
                      "personas with the trait (a full shift of the posterior to the trait).", steer, 'no metric named "swear_rate"')  # fmt: skip
    return Section("Text personas", [probes, steering])


def critic_drift(inputs: ReportInputs) -> Section:
    """H10's figures: drift from the exact ideal against γ, one line per critic, and each
    critic's score against the drift it cost."""
    curves = F.knob_curves(inputs.rows, "params.gamma", ["drift", "persona_tv_after", "early_shift"], colours=inputs.colours)
    drift = Figure("critic_drift", "Drift from the exact ideal against γ",
                   "A text simulator fine-tuned by PPO on its own documents, each word graded by a critic, with the grades of later "
                   "words credited to earlier ones with discount γ (0: myopic). Left: the fine-tuned model's excess nats over the exact "
                   "ideal on held-out real documents minus the pretrained model's; middle: the total variation between the personas of "
                   "its own documents (by the exact posterior) and the corpus's mixture; right: how far its first words moved toward "
                   "futures the critic grades well. One line per process (critic), mean and 95% interval over seeds.", curves,
                   'no metric "drift" swept over params.gamma')  # fmt: skip
    trade = F.tradeoff(inputs.rows, "drift", "critic_gain", colours=inputs.colours, xlabel="drift (excess nats, after − before)",
                       ylabel="critic score per word, after − before", title="What each critic bought, and what it cost")  # fmt: skip
    tradeoff = Figure("critic_tradeoff", "The critic's score against the drift",
                      "Per process and sweep point (γ, approval): the gain in the critic's own score per word of the model's documents "
                      "against the drift from the exact ideal (mean and 95% interval over seeds; faint: seeds). The MONA analogue (γ = 0 "
                      "with the ideal's approval) against the myopic and far-sighted runs of the same critic.", trade,
                      'no metrics "drift" and "critic_gain"')  # fmt: skip
    return Section("Critics and the feedback gap", [drift, tradeoff], tables=_samples_table(inputs.series), knobs=("params.gamma",))


SAMPLES = "samples"
"""The series in which a text kind stores a few documents its models wrote: `{"before": [...],
"after": [...]}`."""


def _samples_table(series, per: int = 2) -> list:
    """One row per process and sweep point (its lowest seed): the first `per` documents the
    fine-tuned model wrote, and the pretrained model's (the same for every row of a seed)."""
    best: dict[tuple[str, str], tuple[int, Mapping]] = {}
    for s in series:
        d = s.get("data")
        if s.get("name") != SAMPLES or not isinstance(d, Mapping):
            continue
        point = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted((s.get("sweep") or {}).items()))
        key = (str(s.get("process")), point)
        seed = int(s.get("seed") or 0)
        if key not in best or seed < best[key][0]:
            best[key] = (seed, d)
    if not best:
        return []
    show = lambda docs: " ‖ ".join(str(x) or "(empty)" for x in list(docs)[:per])  # noqa: E731
    rows = tuple((process, point or "–", str(seed), show(d.get("after") or []), show(d.get("before") or []))
                 for (process, point), (seed, d) in sorted(best.items()))  # fmt: skip
    return [Table(("process", "sweep point", "seed", "fine-tuned model writes", "pretrained model writes"), rows)]


__all__ = ["critic_drift", "event_rates", "text_personas", "finetuning", "inside_the_network", "lookahead_curves", "misgeneralisation", "myopia_gaps", "onset_curves", "return_conditioning"]
