"""The `simulacra` command line: a thin layer over the package's modules."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="simulacra: grow simulators and agents from the same worlds, and tell them apart.", no_args_is_help=True)
world_app = typer.Typer(help="Worlds: show, list and draw gridworlds.", no_args_is_help=True)
app.add_typer(world_app, name="world")
corpus_app = typer.Typer(help="Corpora: episodes acted by a mixture of characters, with their ideal predictor.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
study_app = typer.Typer(help="Studies: declarative grids of worlds x processes x knobs x seeds, findings and the report.", no_args_is_help=True)
app.add_typer(study_app, name="study")
model_app = typer.Typer(help="Models: train simulators on corpora, and measure them.", no_args_is_help=True)
app.add_typer(model_app, name="model")
text_app = typer.Typer(help="Text worlds: personas with traits speaking a grammar whose law is exact.", no_args_is_help=True)
app.add_typer(text_app, name="text")
console = Console()
"""Normal output: tables, progress, what was written."""
errors = Console(stderr=True)
"""Errors: one line each, on stderr."""


def _fail(message: str) -> NoReturn:
    """Report bad input in one line on stderr and exit with status 2."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _params_or_exit(name_or_path: str, knobs: list[str] | None = None):
    """A named task, or an ASCII map file, with `key=value` knob overrides."""
    from simulacra.world import TASKS, from_ascii, task

    try:
        overrides = _parse_knobs(knobs or [])
    except ValueError as e:
        _fail(str(e))
    if name_or_path in TASKS:
        try:
            return task(name_or_path, **overrides)
        except (ValueError, TypeError) as e:
            _fail(str(e))
    path = Path(name_or_path)
    if not path.is_file():
        _fail(f"unknown task {name_or_path!r} (and no such map file); known tasks: {', '.join(TASKS)}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        byte = f"byte {e.object[e.start]:#04x} at offset {e.start}"
        _fail(f"map file {path} is not text ({byte} is not UTF-8); a map is ASCII, one row a line")
    except OSError as e:
        _fail(f"cannot read map file {path}: {e.strerror or e}")
    try:
        return from_ascii(text, name=path.stem, **overrides)
    except (ValueError, TypeError) as e:
        _fail(f"map file {path}: {e}")


def _parse_knobs(knobs: list[str]) -> dict:
    from simulacra.world import WorldParams

    types = {f.name: f.type for f in dataclasses.fields(WorldParams)}
    out = {}
    for kv in knobs:
        if "=" not in kv:
            raise ValueError(f"knob {kv!r} must look like name=value")
        k, v = kv.split("=", 1)
        if k not in types or k == "layout":
            raise ValueError(f"unknown knob {k!r}; knobs: {', '.join(n for n in types if n != 'layout')}")
        t = str(types[k])
        if "bool" in t:
            if v.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"knob {k} takes true or false, got {v!r}")
            out[k] = v.lower() in ("true", "1")
        elif "float" in t:
            try:
                out[k] = float(v)
            except ValueError:
                raise ValueError(f"knob {k} takes a number, got {v!r}") from None
        elif "int" in t:
            try:
                out[k] = int(v)
            except ValueError:
                raise ValueError(f"knob {k} takes a whole number (digits only, e.g. {k}=100), got {v!r}") from None
        else:
            out[k] = v
    return out


@world_app.command("list")
def world_list() -> None:
    """List the named tasks."""
    from simulacra.world import TASKS

    table = Table("task", "description")
    for name, desc in TASKS.items():
        table.add_row(name, desc)
    console.print(table)


@world_app.command("show")
def world_show(
    task_name: str = typer.Argument(..., metavar="TASK", help="a task name (see `simulacra world list`) or an ASCII map file"),
    knob: list[str] = typer.Option(None, "--set", "-s", help="override a knob, e.g. -s reward_delay=3 (repeatable)"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="seed of the episode shown (random starts, coins, obstacles)"),
) -> None:
    """Print a task's map, one episode's start, and its parameters."""
    import jax

    from simulacra.world import LEGEND, optimal_return, render_ascii, reset

    params = _params_or_exit(task_name, knob)
    state = reset(jax.random.PRNGKey(seed), params)
    console.print(f"[bold]{params.name}[/bold]  {params.height}x{params.width}")
    console.print("map:", style="dim")
    console.print("\n".join(params.layout), highlight=False)
    console.print(f"episode start (seed {seed}):", style="dim")
    console.print(render_ascii(state, params), highlight=False)
    table = Table("parameter", "value")
    for f in dataclasses.fields(params):
        if f.name != "layout":
            table.add_row(f.name, str(getattr(params, f.name)))
    table.add_row("optimal return (this episode)", f"{float(optimal_return(state, params)):.3f}")
    console.print(table)
    console.print("legend: " + "  ".join(f"{c} {d.split(' (')[0]}" for c, d in LEGEND.items()), style="dim")


@corpus_app.command("make")
def corpus_make(
    task_name: str = typer.Argument(..., metavar="TASK", help="a task name or an ASCII map file"),
    mix: str = typer.Option(None, "--mix", help="characters and weights, e.g. seeker(0.1):0.5,random:0.5 (default seeker:0.5,random:0.5); for TASK text, personas, e.g. friendly+sailor:1,sailor:1 (default all)"),
    n: int = typer.Option(10_000, "-n", "--episodes", min=1, help="number of episodes, or documents for TASK text (at most 10,000,000)"),
    out: Path = typer.Option(..., "-o", "--out", help="directory to write (must not exist unless --force)"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="seed: the same seed gives the same corpus"),
    knob: list[str] = typer.Option(None, "--set", "-s", help="override a world knob, e.g. -s reward_delay=3; for TASK text, a grammar term, e.g. -s tail.damn.sailor=3 or -s max_sentences=2"),
    obs: bool = typer.Option(False, "--obs/--no-obs", help="also store symbolic observations (always derivable exactly from the states)"),
    force: bool = typer.Option(False, "--force", help="replace an existing corpus at OUT"),
) -> None:
    """Generate a corpus and write it (atomically) to OUT (TASK text: documents of personas; see `simulacra text show`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from simulacra.characters import parse_mixture
    from simulacra.corpus import CorpusError, make_corpus
    from simulacra.corpus.generate import check_size
    from simulacra.corpus.store import check_writable
    from simulacra.progress import progress as meter

    if task_name == "text":
        return _text_corpus_make(mix or "all", n, out, seed, knob or [], force)
    params = _params_or_exit(task_name, knob)
    try:
        check_size(n, seed)
        mixture = parse_mixture(mix or "seeker:0.5,random:0.5")
        check_writable(out, overwrite=force)  # before any work
    except CorpusError as e:
        _fail(f"{e}" + ("" if force else "; pass --force to replace a corpus"))
    except ValueError as e:
        _fail(str(e))
    columns = (TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with meter("generating", n, "episodes", console=console, columns=columns) as bar:
            corpus = make_corpus(params, mixture, n, seed=seed, store_obs=obs, progress=bar.advance)
    except MemoryError:
        _fail(f"not enough memory for {n:,} episodes of {params.name} (a corpus is held in memory); make fewer, or several corpora")
    try:
        corpus.save(out, overwrite=force)
    except (CorpusError, OSError) as e:
        _fail(str(e))
    console.print(f"wrote {corpus.n_episodes} episodes ({corpus.n_transitions} transitions) of {params.name} to {out}")


@corpus_app.command("show")
def corpus_show(
    path: Path = typer.Argument(..., help="a corpus directory"),
    ideal: bool = typer.Option(True, "--ideal/--no-ideal", help="compute the ideal predictor's log-loss per token type"),
) -> None:
    """Summarise a corpus: returns by character, event rates, the ideal log-loss per token type."""
    from simulacra.corpus import Corpus, CorpusError
    from simulacra.corpus.report import summary_tables

    if _family(path) == "text":
        return _text_corpus_show(path, ideal)
    try:
        corpus = Corpus.load(path)
    except CorpusError as e:
        _fail(str(e))
    for table in summary_tables(corpus, with_ideal=ideal):
        console.print(table)


@corpus_app.command("filter")
def corpus_filter(
    path: Path = typer.Argument(..., help="a corpus directory"),
    out: Path = typer.Argument(..., help="directory to write (must not exist unless --force)"),
    top: float = typer.Option(..., "--top", help="the fraction of episodes to keep, best return first, e.g. 0.1 (in (0, 1])"),
    per_character: bool = typer.Option(False, "--per-character", help="keep the top fraction of each character's episodes"),
    force: bool = typer.Option(False, "--force", help="replace an existing corpus at OUT"),
) -> None:
    """Write the corpus of the best episodes by return (the %BC baseline's data); its manifest records the parent and the filter."""
    from simulacra.corpus import CorpusError, top_fraction
    from simulacra.corpus.store import check_writable

    if not 0 < top <= 1:
        _fail(f"--top {top:g} is not a fraction of the episodes: give a number in (0, 1], e.g. 0.1")
    try:
        check_writable(out, overwrite=force)  # before any work
    except CorpusError as e:
        _fail(f"{e}" + ("" if force else "; pass --force to replace a corpus"))
    corpus = _load_corpus(path)
    kept = top_fraction(corpus, top, per_character=per_character)
    try:
        kept.save(out, overwrite=force)
    except (CorpusError, OSError) as e:
        _fail(str(e))
    ret = kept.episodes.return_
    console.print(f"wrote {kept.n_episodes} of {corpus.n_episodes} episodes (returns {ret.min():.3f} to {ret.max():.3f}, "
                  f"mean {ret.mean():.3f}; the parent's mean {corpus.episodes.return_.mean():.3f}) to {out}")


@corpus_app.command("export")
def corpus_export(
    path: Path = typer.Argument(..., help="a corpus directory"),
    minari_id: str = typer.Option(..., "--minari", help="Minari dataset id to write, e.g. simulacra/offswitch-v0"),
    root: Path = typer.Option(None, "--root", help="Minari datasets directory (default: MINARI_DATASETS_PATH or ~/.minari/datasets)"),
) -> None:
    """Export a corpus as a Minari dataset (needs the `minari` extra)."""
    from simulacra.corpus import Corpus, CorpusError
    from simulacra.corpus.minari_export import export_minari

    try:
        corpus = Corpus.load(path)
        dataset = export_minari(corpus, minari_id, root=root)
    except (CorpusError, RuntimeError, ValueError, TypeError, OSError) as e:
        _fail(f"cannot export to Minari dataset {minari_id!r}: {e}")
    console.print(f"wrote Minari dataset {minari_id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps")


def _load_simulator(path: Path):
    from simulacra.model import Simulator
    from simulacra.model.checkpoint import CheckpointError

    try:
        return Simulator.load(path)
    except CheckpointError as e:
        _fail(str(e))


def _load_corpus(path: Path):
    from simulacra.corpus import Corpus, CorpusError

    try:
        return Corpus.load(path)
    except CorpusError as e:
        _fail(str(e))


@model_app.command("train")
def model_train(
    corpus_path: Path = typer.Argument(..., metavar="CORPUS", help="a corpus directory (`simulacra corpus make`)"),
    out: Path = typer.Option(..., "-o", "--out", help="checkpoint directory to write (must not exist unless --force)"),
    loss_on: str = typer.Option("trajectory", help="which tokens carry loss: trajectory (a simulator) or actions (behaviour cloning)"),
    rtg: bool = typer.Option(False, "--rtg", help="return-to-go before every state: a Decision Transformer"),
    character: bool = typer.Option(False, "--character", help="the acting character's tag in the prompt"),
    grid: bool = typer.Option(False, "--grid", help="grid embedding: cells placed by shared row and column vectors (unseen layouts)"),
    rtg_numeric: bool = typer.Option(False, "--rtg-numeric", help="with --rtg: embed the return-to-go as a number (a learned line)"),
    d_model: int = typer.Option(128, min=1), n_layers: int = typer.Option(2, min=1), n_heads: int = typer.Option(4, min=1),
    d_mlp: int = typer.Option(512, min=1),
    steps: int = typer.Option(2000, min=1, help="optimiser steps"),
    batch_size: int = typer.Option(32, min=1, help="episodes per step"),
    lr: float = typer.Option(1e-3, help="peak learning rate"),
    warmup: int = typer.Option(100, min=0, help="warm-up steps (at most --steps)"),
    future_heads: int = typer.Option(1, "--future-heads", metavar="N", help="output heads: head k predicts the token k ahead (multi-token prediction; 1: ordinary)"),
    myopic: bool = typer.Option(False, "--myopic", help="myopic descent: a position's loss cannot shape what earlier positions compute for later ones"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1),
    force: bool = typer.Option(False, "--force", help="replace an existing checkpoint at OUT"),
) -> None:
    """Train a transformer on a corpus by next-token prediction and save it with its model card."""
    from simulacra.model.checkpoint import _is_checkpoint
    from simulacra.training.predict import PredictConfig, fit

    try:
        config = PredictConfig(loss_on=loss_on, character=character, rtg=rtg, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                               d_mlp=d_mlp, steps=steps, batch_size=batch_size, lr=lr, warmup=min(warmup, steps),
                               grid=grid, rtg_numeric=rtg_numeric, future_heads=future_heads, myopic=myopic)
    except ValueError as e:
        _fail(str(e))
    if out.exists() and not (force and _is_checkpoint(out)):
        _fail(f"{out} already exists" + ("; pass --force to replace a checkpoint" if _is_checkpoint(out) else " and is not a simulacra checkpoint"))
    if _family(corpus_path) == "text":
        return _text_model_train(corpus_path, config, out, seed, force)
    corpus = _load_corpus(corpus_path)
    try:
        config.transformer(config.format(corpus.params))
    except ValueError as e:
        _fail(str(e))
    sim = fit(corpus, config, seed=seed, progress=True)
    sim.save(out, overwrite=force)
    m = sim.card["metrics"]
    console.print(f"trained {steps} steps in {m['train_seconds']:.1f} s: loss {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}; wrote {out}")


@model_app.command("show")
def model_show(path: Path = typer.Argument(..., help="a checkpoint directory")) -> None:
    """Print a model card."""
    if _is_text_model(path):
        return _text_model_show(path)
    sim = _load_simulator(path)
    card = sim.card
    flat = lambda d: ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())  # noqa: E731
    corpus = card.get("corpus", {})
    table = Table("field", "value", title=str(path))
    table.add_row("world", sim.fmt.params.name)
    table.add_row("process", f"{card['process']['name']}: {flat(card['process']['config'])}")
    table.add_row("architecture", flat(dataclasses.asdict(sim.model.config)))
    table.add_row("corpus", f"{corpus.get('path')} ({corpus.get('n_episodes')} episodes, seed {corpus.get('seed')}), "
                  f"sha256 {str(corpus.get('sha256'))[:16]}…")
    table.add_row("characters", ", ".join(sim.characters))
    table.add_row("metrics", flat(card.get("metrics", {})))
    table.add_row("seed / version", f"{card.get('seed')} / simulacra {card.get('simulacra_version')}")
    console.print(table)


@model_app.command("fidelity")
def model_fidelity(
    path: Path = typer.Argument(..., help="a checkpoint directory (an unconditioned simulator)"),
    corpus_path: Path = typer.Option(..., "--corpus", help="held-out corpus of the same world and mixture"),
    dreams: int = typer.Option(512, min=0, help="episodes to dream for the legality check (0: none)"),
    temperature: float = typer.Option(1.0, min=0.0),
    seed: int = typer.Option(0, min=0, max=2**32 - 1),
) -> None:
    """Excess log-loss over the ideal by token type, calibration, action KL; legality of dreams."""
    import jax

    from simulacra.lenses import fidelity

    sim = _load_simulator(path)
    corpus = _load_corpus(corpus_path)
    try:
        s = fidelity.scores(sim, corpus)
    except ValueError as e:
        _fail(str(e))
    table = Table("token type", "tokens", "model nats", "ideal nats", "excess", "ECE", title=f"{path} on {corpus_path} ({corpus.n_episodes} episodes)")
    for name, v in s["by_type"].items():
        table.add_row(name, str(v["tokens"]), f"{v['model']:.4f}", f"{v['ideal']:.4f}", f"{v['excess']:.4f}", f"{v['ece']:.4f}")
    console.print(table)
    console.print(f"KL(ideal || model) on actions: {s['action_kl']:.4f} nats/step")
    if dreams:
        d = sim.dream(jax.random.PRNGKey(seed), dreams, temperature=temperature)
        legal = fidelity.legality(sim, d)
        console.print(
            f"dreams: {dreams} episodes, {legal['transitions']} transitions, {100 * legal['legal_fraction']:.2f}% legal, "
            f"{legal['malformed_episodes']} malformed episodes"
        )
        if legal["malformed_episodes"] == dreams:
            console.print("no well-formed dream to compare with the corpus")
            return
        cmp = fidelity.compare(legal, corpus)
        t2 = Table("measure", "dreamed", "real", "statistic", "p-value", title="dreamed vs real")
        t2.add_row("return (KS)", f"{cmp['return']['dreamed_mean']:.3f}", f"{cmp['return']['real_mean']:.3f}", f"{cmp['return']['ks']:.3f}", f"{cmp['return']['pvalue']:.3g}")
        t2.add_row("length (KS)", f"{cmp['length']['dreamed_mean']:.1f}", f"{cmp['length']['real_mean']:.1f}", f"{cmp['length']['ks']:.3f}", f"{cmp['length']['pvalue']:.3g}")
        for name, e in cmp["events"].items():
            if e["dreamed"] or e["real"]:
                t2.add_row(f"episodes with {name}", f"{e['dreamed']:.3f}", f"{e['real']:.3f}", "", f"{e['pvalue']:.3g}")
        console.print(t2)


@model_app.command("condition")
def model_condition(
    path: Path = typer.Argument(..., help="a checkpoint directory (return- or character-conditioned)"),
    targets: str = typer.Option("0,0.25,0.5,0.75,1,1.5", help="comma-separated target returns for the sweep"),
    n: int = typer.Option(256, "-n", "--episodes", min=1, help="episodes per prompt"),
    temperature: float = typer.Option(1.0, min=0.0),
    seed: int = typer.Option(0, min=0, max=2**32 - 1),
) -> None:
    """Return sweep (target -> achieved return) and/or character match (prompt -> KL to each character)."""
    import jax

    from simulacra.lenses import conditioning

    sim = _load_simulator(path)
    key = jax.random.PRNGKey(seed)
    if not (sim.fmt.rtg or sim.fmt.character):
        _fail(f"{path} has neither return-to-go nor character slots; nothing to condition on")
    if sim.fmt.rtg:
        try:
            values = [float(x) for x in targets.split(",") if x.strip()]
        except ValueError:
            _fail(f"--targets must be comma-separated numbers, got {targets!r}")
        character = 0 if sim.fmt.character else None
        sweep = conditioning.return_sweep(sim, values, key, n_episodes=n, temperature=temperature, character=character)
        table = Table("target", "return", "95% CI", "fraction of optimal", "success", "length", title="return sweep")
        for r in sweep["rows"]:
            table.add_row(f"{r['target']:g}", f"{r['return']:.3f}", f"[{r['return_ci'][0]:.3f}, {r['return_ci'][1]:.3f}]",
                          f"{r['fraction_of_optimal']:.3f}", f"{r['success']:.3f}", f"{r['length']:.1f}")
        console.print(table)
        console.print(f"monotone (within CIs): {sweep['monotone']}; Spearman rho {sweep['spearman']}")
    if sim.fmt.character:
        match = conditioning.character_match(sim, key, n_episodes=n, temperature=temperature, target=1.0 if sim.fmt.rtg else None)
        table = Table("prompted \\ reference", *match["characters"], title="KL(character policy || model), nats/step")
        for name, row in zip(match["characters"], match["kl"]):
            table.add_row(name, *[f"{v:.3f}" for v in row])
        console.print(table)
        console.print(f"every prompt closest to its own character: {match['matches']}")


@model_app.command("evaluate")
def model_evaluate(
    path: Path = typer.Argument(..., help="a checkpoint directory (any model: a simulator, a behaviour clone, a Decision Transformer)"),
    world_name: str = typer.Option(None, "--world", metavar="TASK", help="act in this task or ASCII map file (default: the model's own world)"),
    knob: list[str] = typer.Option(None, "--set", "-s", help="override a knob of that world, e.g. -s coin_random_prob=1"),
    n: int = typer.Option(256, "-n", "--episodes", min=1, max=1_000_000, help="episodes to act"),
    temperature: float = typer.Option(1.0, min=0.0, help="sampling temperature (0: greedy)"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="seed of the episodes"),
    target: float = typer.Option(None, "--target", help="target return of the prompt (return-conditioned models only; default 1)"),
    character: str = typer.Option(None, "--character", help="character of the prompt (character-conditioned models only; default the first)"),
    corpus_path: Path = typer.Option(None, "--corpus", metavar="DIR", help="a corpus of the same world whose exact law scores the actions: "
                                     "adds the share of out-of-distribution actions and their mean log-probability under it"),
) -> None:
    """Act episodes with a model as the policy and print its behaviour: success, return, fraction
    of optimal, length, event rates, and steps to the coin against the shortest path; with
    --corpus, also how far its actions lie from that corpus's exact law (ood rate, log-probability)."""
    import jax
    import numpy as np

    from simulacra.kinds.behaviour import EVENTS, BehaviourSettings, measure
    from simulacra.lenses.behaviour import from_rollouts

    sim = _load_simulator(path)
    if target is not None and not sim.fmt.rtg:
        _fail(f"{path} has no return-to-go slots; --target cannot be given (it is not a return-conditioned model)")
    if character is not None and not sim.fmt.character:
        _fail(f"{path} has no character slot; --character cannot be given (it is not a character-conditioned model)")
    if target is None and sim.fmt.rtg:
        target = 1.0
    if character is None and sim.fmt.character:
        character = sim.characters[0]
    world = sim.fmt.params if world_name is None and not knob else _params_or_exit(world_name or sim.fmt.params.name, knob)
    corpus = _load_corpus(corpus_path) if corpus_path is not None else None
    if corpus is not None and corpus.params != world:
        _fail(f"{corpus_path} is a corpus of world {corpus.params.name!r} with other knobs than the world the model acts in "
              f"({world.name!r}); its law cannot score these episodes")
    try:
        episodes = sim.act(jax.random.PRNGKey(seed), n, target=target, character=character, temperature=temperature, world=world)
    except ValueError as e:
        _fail(str(e))
    settings = BehaviourSettings()
    m = measure(episodes, world, sim.fmt.params, corpus, settings, moved=False)
    r = from_rollouts(episodes, world)
    prompt = ", ".join(p for p in (f"target {target:g}" if target is not None else "", f"character {character}" if character else "") if p)
    table = Table("measure", "value", title=f"{path} in {world.name}: {n} episodes, temperature {temperature:g}" + (f", {prompt}" if prompt else ""))
    for name, label in (("success", "success"), ("return", "return"), ("true_return", "true return"),
                        ("fraction_of_optimal", "fraction of optimal"), ("length", "episode length")):
        table.add_row(label, f"{m[name]:.3f}")
    for e in EVENTS:
        table.add_row(f"episodes with {e}", f"{m[f'rate_{e}']:.3f}")
    nanmean = lambda x: float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")  # noqa: E731
    got = np.isfinite(r["steps_to_coin"])
    table.add_row("steps to the first coin", f"{nanmean(r['steps_to_coin']):.2f}")
    table.add_row("shortest path (key and door respected)", f"{nanmean(r['shortest_path'][got]) if got.any() else float('nan'):.2f}")
    table.add_row("excess steps over the shortest path", f"{nanmean(r['excess_steps']):.2f}")
    table.add_row("episodes on a shortest path", f"{float(np.mean(r['excess_steps'][got] == 0)) if got.any() else float('nan'):.3f}")
    if corpus is not None:
        table.add_row(f"out-of-distribution actions (P < {settings.ood_threshold:g} under the corpus's law)", f"{m['ood_rate']:.4f}")
        table.add_row("mean log-probability of the actions under it (nats/step)", f"{m['ideal_action_logp']:.3f}")
        table.add_row("the same for the corpus's own actions", f"{m['corpus_ideal_action_logp']:.3f}")
    console.print(table)


PLUGINS = ("simulacra.kinds",)
"""Modules imported before every study command: the shipped process kinds."""


def _study_call(fn):
    from simulacra.studies import StudyError

    try:
        return fn()
    except StudyError as e:
        _fail(str(e))


ONLY_HELP = "just these hypotheses (comma-separated ids, e.g. H7,H8) and the processes they need"


def _ids(only: str | None) -> list[str] | None:
    return [h.strip() for h in only.split(",") if h.strip()] if only else None


def _run_command(path: Path, profile: str | None, ids: list[str] | None) -> str:
    return f"simulacra study run {path}" + (f" --profile {profile}" if profile else "") + (f" --only {','.join(ids)}" if ids else "")


def _plugins(extra: list[str] | None) -> tuple[str, ...]:
    return PLUGINS + tuple(extra or ())


def _workers(value: str | None) -> int | None:
    """`--workers N|auto` (else $SIMULACRA_WORKERS): a positive count, or None for auto."""
    from simulacra.studies.pool import parse_workers

    if value is None:
        return parse_workers(os.environ.get("SIMULACRA_WORKERS") or "auto", "SIMULACRA_WORKERS")
    return parse_workers(value, "--workers")


@study_app.command("run")
def study_run(
    path: Path = typer.Argument(..., help="a study file (YAML), e.g. studies/flagship.yaml"),
    profile: str = typer.Option(None, "--profile", "-p", help="a profile of the study, e.g. quick"),
    root: Path = typer.Option(Path("runs"), help="where runs/<study>/ lives"),
    plugin: list[str] = typer.Option(None, "--plugin", help="extra module registering process kinds (repeatable)"),
    keep_going: bool = typer.Option(False, "--keep-going", help="record a failing unit and go on"),
    report: bool = typer.Option(True, "--report/--no-report", help="write report.html and report.md when done"),
    only: str = typer.Option(None, "--only", help=ONLY_HELP),
    compile_cache: str = typer.Option(
        None, "--compile-cache", metavar="DIR|off",
        help="JAX's persistent compilation cache (default: $SIMULACRA_COMPILE_CACHE, else ~/.cache/simulacra/jax); off turns it off",
    ),
    executor: str = typer.Option(
        "processes", "--executor", metavar="processes|local|ray",
        help="processes: calls at once in --workers worker processes; local: one call after another here; ray: each call a Ray task (the ray extra)",
    ),
    workers: str = typer.Option(
        None, "--workers", metavar="N|auto",
        help="with --executor processes: how many worker processes (default: $SIMULACRA_WORKERS, else auto: the cores, at most 4)",
    ),
    address: str = typer.Option(
        None, "--address", metavar="HOST:PORT", help="with --executor ray: the Ray cluster to join (auto: the one on this machine); default: start a local one",
    ),
) -> None:
    """Run the units not yet stored (a killed run continues), print the findings, write the report."""
    import time

    from simulacra.compilation import enable_cache
    from simulacra.studies import cmd_run, load_study

    if address is not None and executor != "ray":
        _fail("--address is the Ray cluster to run on; it needs --executor ray")
    if workers is not None and executor != "processes":
        _fail("--workers is the number of worker processes; it needs --executor processes (the default)")
    try:
        n_workers = _workers(workers)
    except ValueError as e:
        _fail(str(e))
    try:
        enable_cache(compile_cache)
    except ValueError as e:
        _fail(str(e))
    t0 = time.perf_counter()
    ids = _ids(only)
    _study_call(lambda: cmd_run(path, profile, executor=executor, root=root, plugins=_plugins(plugin), keep_going=keep_going,
                                console=console, only=ids, address=address, workers=n_workers))
    if report:
        from simulacra.report.study import report_study

        study = _study_call(lambda: load_study(path, profile, ids))
        cmd = _run_command(path, profile, ids)
        html, md = _study_call(lambda: report_study(study, root, command=cmd, wall_clock_s=time.perf_counter() - t0))
        console.print(f"report: {html} and {md} ({time.perf_counter() - t0:.0f} s in all)")


@study_app.command("status")
def study_status(
    path: Path = typer.Argument(..., help="a study file"),
    profile: str = typer.Option(None, "--profile", "-p"),
    root: Path = typer.Option(Path("runs")),
    plugin: list[str] = typer.Option(None, "--plugin"),
    only: str = typer.Option(None, "--only", help=ONLY_HELP),
) -> None:
    """Units done and pending per process, and the findings so far (creates nothing)."""
    from simulacra.studies import cmd_status

    _study_call(lambda: cmd_status(path, profile, root=root, plugins=_plugins(plugin), console=console, only=_ids(only)))


@study_app.command("report")
def study_report(
    path: Path = typer.Argument(..., help="a study file"),
    profile: str = typer.Option(None, "--profile", "-p"),
    root: Path = typer.Option(Path("runs")),
    plugin: list[str] = typer.Option(None, "--plugin"),
    only: str = typer.Option(None, "--only", help=ONLY_HELP),
) -> None:
    """Write runs/<study>/report.html and report.md from the results stored so far."""
    from simulacra.report.study import report_study
    from simulacra.studies import load_plugins, load_study

    ids = _ids(only)

    def go():
        load_plugins(_plugins(plugin))
        study = load_study(path, profile, ids)
        return report_study(study, root, command=_run_command(path, profile, ids))

    html, md = _study_call(go)
    console.print(f"wrote {html} and {md}")


@study_app.command("list")
def study_list(
    root: Path = typer.Argument(Path("studies"), help="folder of study files"),
    plugin: list[str] = typer.Option(None, "--plugin"),
) -> None:
    """The study files in a folder, with their profiles and hypotheses."""
    from simulacra.studies import cmd_list

    _study_call(lambda: cmd_list(root, plugins=_plugins(plugin), console=console))


@app.command()
def demo(
    task_name: str = typer.Option("full", "--task", help="task to show"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="episode seed"),
    envs: int = typer.Option(4096, help="worlds stepped in parallel for the throughput line"),
    steps: int = typer.Option(100, help="steps per world for the throughput line"),
) -> None:
    """A world tour: an exact planner acts one rendered episode, then a throughput line (the main job is `make demo`: the quick flagship study)."""
    from simulacra.world.demo import run_demo

    params = _params_or_exit(task_name)
    run_demo(params, seed=seed, n_envs=envs, n_steps=steps, console=console)


# -- text worlds ------------------------------------------------------------------------------------


def _family(path: Path) -> str | None:
    """A corpus directory's family ("text"), None for gridworld corpora and anything unreadable
    (the loader then names the problem)."""
    import json

    try:
        return json.loads((Path(path) / "manifest.json").read_text()).get("family")
    except (OSError, ValueError, AttributeError):
        return None


def _is_text_model(path: Path) -> bool:
    import json

    try:
        return "text_format" in json.loads((Path(path) / "card.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _grammar_or_exit(overrides: list[str]):
    from simulacra.text import default_grammar

    try:
        return default_grammar().override(overrides)
    except ValueError as e:
        _fail(str(e))


def _personas_or_exit(mix: str):
    from simulacra.text import parse_personas

    try:
        return parse_personas(mix)
    except ValueError as e:
        _fail(f"persona mixture {mix!r}: {e}")


def _load_text_corpus(path: Path):
    from simulacra.corpus import CorpusError
    from simulacra.text import TextCorpus

    try:
        return TextCorpus.load(path)
    except CorpusError as e:
        _fail(str(e))


def _load_text_model(path: Path):
    from simulacra.model.checkpoint import CheckpointError
    from simulacra.text.model import TextSimulator

    try:
        return TextSimulator.load(path)
    except CheckpointError as e:
        _fail(str(e))


def _text_corpus_make(mix: str, n: int, out: Path, seed: int, overrides: list[str], force: bool) -> None:
    from simulacra.corpus import CorpusError
    from simulacra.corpus.store import check_writable
    from simulacra.text import make_text_corpus
    from simulacra.text.corpus import check_size

    grammar = _grammar_or_exit(overrides)
    mixture = _personas_or_exit(mix)
    try:
        check_size(n, seed)
        check_writable(out, overwrite=force)
    except CorpusError as e:
        _fail(f"{e}" + ("" if force else "; pass --force to replace a corpus"))
    except ValueError as e:
        _fail(str(e))
    with console.status(f"generating {n:,} documents"):
        try:
            corpus = make_text_corpus(grammar, mixture, n, seed=seed)
        except MemoryError:
            _fail(f"not enough memory for {n:,} documents (a corpus is held in memory); make fewer, or several corpora")
    try:
        corpus.save(out, overwrite=force)
    except (CorpusError, OSError) as e:
        _fail(str(e))
    console.print(f"wrote {corpus.n_documents:,} documents ({int(corpus.lengths.sum()):,} words) of {mixture.spec()} to {out}")


def _text_corpus_show(path: Path, ideal: bool) -> None:
    from simulacra.text import SWEAR_WORDS, persona_name, text_ideal
    from simulacra.text.corpus import PAD

    corpus = _load_text_corpus(path)
    swear = np.isin(corpus.words, [corpus.vocab.index(w) for w in SWEAR_WORDS if w in corpus.vocab])
    live = corpus.words != PAD
    nll = -text_ideal(corpus).logp if ideal else None
    table = Table("persona", "documents", "words/doc", "swear words/doc", *(["ideal nats/word"] if ideal else []),
                  title=f"{path}: {corpus.n_documents:,} documents, seed {corpus.seed}")
    for p in corpus.mixture.personas:
        sel = corpus.personas == p
        row = [persona_name(p), f"{int(sel.sum()):,}", f"{corpus.lengths[sel].mean():.2f}" if sel.any() else "-",
               f"{swear[sel].sum(1).mean():.3f}" if sel.any() else "-"]
        if ideal:
            row.append(f"{nll[sel][live[sel]].mean():.3f}" if sel.any() else "-")
        table.add_row(*row)
    console.print(table)
    for i in range(min(3, corpus.n_documents)):
        console.print(f"[dim]{persona_name(corpus.personas[i])}:[/dim] {escape(corpus.text(i))}", highlight=False)


def _text_model_train(corpus_path: Path, config, out: Path, seed: int, force: bool) -> None:
    from simulacra.text.model import TextFormat, fit_text

    if config.rtg or config.grid or config.rtg_numeric or config.loss_on != "trajectory":
        _fail("a text model takes no --rtg, --grid, --rtg-numeric or --loss-on actions (loss is on the words); --character puts the persona tag in the prompt")
    corpus = _load_text_corpus(corpus_path)
    tagged = config.character
    config = dataclasses.replace(config, character=False)
    try:
        config.transformer(TextFormat(corpus.grammar, tagged))
    except ValueError as e:
        _fail(str(e))
    sim = fit_text(corpus, config, seeds=[seed], tagged=tagged, progress=True)[0]
    sim.card["corpus"]["path"] = str(corpus_path)
    sim.save(out, overwrite=force)
    m = sim.card["metrics"]
    console.print(f"trained {config.steps} steps in {m['train_seconds']:.1f} s: loss {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f} nats/word; wrote {out}")


def _text_model_show(path: Path) -> None:
    sim = _load_text_model(path)
    card = sim.card
    flat = lambda d: ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())  # noqa: E731
    corpus = card.get("corpus", {})
    table = Table("field", "value", title=str(path))
    table.add_row("world", f"text ({len(sim.fmt.words)} words, documents up to {sim.fmt.length - sim.fmt.prefix_len} words)")
    table.add_row("prompt", "the persona's tag" if sim.fmt.tagged else "none")
    table.add_row("process", f"{card['process']['name']}: {flat(card['process']['config'])}")
    table.add_row("architecture", f"d_model={sim.spec.d_model}, n_layers={sim.spec.n_layers}, n_heads={sim.spec.n_heads}, d_mlp={sim.spec.d_mlp}")
    table.add_row("corpus", f"{corpus.get('path')} ({corpus.get('n_documents')} documents, seed {corpus.get('seed')})")
    table.add_row("personas", ", ".join(f"{d['persona']}:{d['weight']:g}" for d in corpus.get("mixture", [])))
    table.add_row("metrics", flat(card.get("metrics", {})))
    console.print(table)


@text_app.command("show")
def text_show(
    mix: str = typer.Option("sailor:1,friendly+sailor:1,friendly:1,formal+terse:1", "--mix", help="personas and weights, e.g. friendly+sailor:1,sailor:1, or all"),
    knob: list[str] = typer.Option(None, "--set", "-s", help="override a grammar term, e.g. -s tail.damn.sailor=3, or -s max_sentences=2"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="seed of the documents shown"),
) -> None:
    """One document of each persona in the mixture, with the ideal's posterior as the text unfolds."""
    from simulacra.text import TRAITS, make_text_corpus, persona_name, swear_prob, text_ideal

    grammar = _grammar_or_exit(knob or [])
    mixture = _personas_or_exit(mix)
    corpus = make_text_corpus(grammar, mixture, 64 * len(mixture.personas), seed=seed)
    ideal = text_ideal(corpus)
    names = mixture.names
    console.print(f"[bold]text world[/bold]: {len(grammar.words)} words, up to {grammar.max_sentences} sentence{'s' if grammar.max_sentences != 1 else ''}; "
                  f"personas {mixture.spec()}", highlight=False)
    console.print("per word, before it: the ideal's posterior of the document's own persona (P(own)), its likeliest persona, "
                  "and P(trait) for each trait", style="dim")
    for p in mixture.personas:
        rows = np.flatnonzero(corpus.personas == p)
        if not len(rows):
            continue
        i = int(rows[0])
        me = mixture.personas.index(p)
        console.print(f"\n[bold]{persona_name(p)}[/bold]  (P(swear | tail) = {swear_prob(grammar, p):.3f})", highlight=False)
        table = Table("word", "P(own)", "likeliest", *TRAITS, box=None, pad_edge=False)
        for t in range(int(corpus.lengths[i]) + 1):
            post = ideal.posterior[i, t]
            word = corpus.vocab[corpus.words[i, t]] if t < corpus.lengths[i] else "(all words)"
            table.add_row(escape(word), f"{post[me]:.3f}", f"{names[int(post.argmax())]} {post.max():.2f}",
                          *(f"{x:.2f}" for x in ideal.traits[i, t]))
        console.print(table)


@model_app.command("dream")
def model_dream(
    path: Path = typer.Argument(..., help="a text model's checkpoint directory"),
    n: int = typer.Option(5, "-n", min=1, max=10_000, help="documents to generate"),
    persona: str = typer.Option(None, "--persona", help="the persona in the prompt (models trained with --character), e.g. friendly+sailor"),
    temperature: float = typer.Option(1.0, help="sampling temperature (> 0)"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1),
) -> None:
    """Print documents a text model generates (gridworld models dream through `Simulator.dream`)."""
    import jax

    from simulacra.text import parse_persona

    if not _is_text_model(path):
        if (Path(path) / "card.json").is_file():
            _fail(f"{path} is a gridworld model: model dream prints text; dream gridworld episodes with Simulator.dream in Python")
        _load_text_model(path)  # names the problem
    sim = _load_text_model(path)
    try:
        index = None if persona is None else parse_persona(persona)
        tokens = sim.generate(jax.random.PRNGKey(seed), n, persona=index, temperature=temperature)
    except ValueError as e:
        _fail(str(e))
    for line in sim.fmt.decode(tokens):
        console.print(escape(line), highlight=False)


def _report(message: str) -> None:
    errors.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", soft_wrap=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """The `simulacra` command (`app` with one-line usage errors): an unknown option, a missing
    argument or a value of the wrong type is one line on stderr and exit code 2, like every other
    bad input, instead of click's boxed usage message."""
    # typer bundles its own click: its exception classes, found through the public BadParameter
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        code = app(args=argv, prog_name="simulacra", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `simulacra study`: the group's help, as before
            print(e.ctx.get_help() if e.ctx else e.format_message())
            sys.exit(0)
        where = e.ctx.command_path if e.ctx else "simulacra"
        _report(f"{where}: {e.format_message()} (see '{where} --help')")
        sys.exit(2)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click_exception as e:
        _report(e.format_message())
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
