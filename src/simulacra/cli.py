"""The `simulacra` command line: a thin layer over the package's modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="simulacra: grow simulators and agents from the same worlds, and tell them apart.", no_args_is_help=True)
world_app = typer.Typer(help="Worlds: show, list and draw gridworlds.", no_args_is_help=True)
app.add_typer(world_app, name="world")
corpus_app = typer.Typer(help="Corpora: episodes acted by a mixture of characters, with their ideal predictor.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
console = Console()


def _params_or_exit(name_or_path: str, knobs: list[str] | None = None):
    """A named task, or an ASCII map file, with `key=value` knob overrides."""
    from simulacra.world import TASKS, from_ascii, task

    try:
        overrides = _parse_knobs(knobs or [])
        if name_or_path in TASKS:
            return task(name_or_path, **overrides)
        path = Path(name_or_path)
        if path.is_file():
            return from_ascii(path.read_text(), name=path.stem, **overrides)
        raise ValueError(f"unknown task {name_or_path!r} (and no such map file); known tasks: {', '.join(TASKS)}")
    except (ValueError, TypeError) as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(2) from None


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
            out[k] = float(v)
        elif "int" in t:
            out[k] = int(v)
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
    seed: int = typer.Option(0, help="seed of the episode shown (random starts, coins, obstacles)"),
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


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(2)


@corpus_app.command("make")
def corpus_make(
    task_name: str = typer.Argument(..., metavar="TASK", help="a task name or an ASCII map file"),
    mix: str = typer.Option("seeker:0.5,random:0.5", "--mix", help="characters and weights, e.g. seeker(0.1):0.5,random:0.5"),
    n: int = typer.Option(10_000, "-n", "--episodes", min=1, help="number of episodes"),
    out: Path = typer.Option(..., "-o", "--out", help="directory to write (must not exist unless --force)"),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="seed: the same seed gives the same corpus"),
    knob: list[str] = typer.Option(None, "--set", "-s", help="override a world knob, e.g. -s reward_delay=3"),
    obs: bool = typer.Option(False, "--obs/--no-obs", help="also store symbolic observations (always derivable exactly from the states)"),
    force: bool = typer.Option(False, "--force", help="replace an existing corpus at OUT"),
) -> None:
    """Generate a corpus and write it (atomically) to OUT."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from simulacra.characters import parse_mixture
    from simulacra.corpus import CorpusError, make_corpus
    from simulacra.corpus.store import check_writable

    params = _params_or_exit(task_name, knob)
    try:
        mixture = parse_mixture(mix)
        check_writable(out, overwrite=force)  # before any work
    except CorpusError as e:
        _fail(f"{e}" + ("" if force else "; pass --force to replace a corpus"))
    except ValueError as e:
        _fail(str(e))
    columns = (TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        job = bar.add_task("episodes", total=n)
        corpus = make_corpus(params, mixture, n, seed=seed, store_obs=obs, progress=lambda k: bar.advance(job, k))
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

    try:
        corpus = Corpus.load(path)
    except CorpusError as e:
        _fail(str(e))
    for table in summary_tables(corpus, with_ideal=ideal):
        console.print(table)


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


@app.command()
def demo(
    task_name: str = typer.Option("full", "--task", help="task to show"),
    seed: int = typer.Option(0, help="episode seed"),
    envs: int = typer.Option(4096, help="worlds stepped in parallel for the throughput line"),
    steps: int = typer.Option(100, help="steps per world for the throughput line"),
) -> None:
    """The main job (for now): one rendered episode and a throughput line."""
    from simulacra.world.demo import run_demo

    params = _params_or_exit(task_name)
    run_demo(params, seed=seed, n_envs=envs, n_steps=steps, console=console)


if __name__ == "__main__":
    app()
