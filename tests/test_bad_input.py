"""Inputs at the edges: each one a hostile but fair user tried gives one line on stderr naming the
problem, exit status 2, and leaves every store as it was (issue "Findings that hold", part 2)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from simulacra.atomic import STALE_AFTER_S, write_dir
from simulacra.characters import parse_mixture
from simulacra.cli import app
from simulacra.corpus import make_corpus
from simulacra.corpus.store import sha256_file
from simulacra.model import ModelSpec, Simulator
from simulacra.world import task
from tests.studies.test_study_files import BASE

runner = CliRunner()
FAKE = ["--plugin", "tests.studies.fake_processes"]


def fails_cleanly(result, *names: str) -> str:
    """Exit status 2, nothing on stdout, one line on stderr that names `names`; that line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and result.stdout == "", result.output
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes (the run lock aside: it holds the last run's pid)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def bad_study_run_fails_cleanly(tmp_path: Path, raw: dict, *names: str) -> str:
    """`study run` of the study `raw` (written to a file) into an empty root: one clean line on
    stderr naming `names`, and nothing stored; that line."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    root = tmp_path / "runs"
    root.mkdir()
    before = snapshot(root)
    line = fails_cleanly(runner.invoke(app, ["study", "run", str(path), "--root", str(root)]), *names)
    assert snapshot(root) == before
    return line


@pytest.fixture(scope="module")
def stored_runs(tmp_path_factory) -> Path:
    """A runs/ folder holding the toy study's results (fake process kinds)."""
    root = tmp_path_factory.mktemp("stored") / "runs"
    study = root.parent / "toy.yaml"
    study.write_text(yaml.safe_dump(BASE))
    r = runner.invoke(app, ["study", "run", str(study), "--root", str(root), *FAKE, "--no-report"])
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def runs(stored_runs, tmp_path) -> Path:
    """A copy of the stored runs/ folder, for a test to try to damage."""
    return Path(shutil.copytree(stored_runs, tmp_path / "runs"))


def study_file(tmp_path: Path, change) -> Path:
    """The toy study (same name, so it would write into the stored results), changed by `change`."""
    d = copy.deepcopy(BASE)
    change(d)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def study(command: str, path: Path, runs: Path, *extra: str):
    before = snapshot(runs)
    result = runner.invoke(app, ["study", command, str(path), "--root", str(runs), *extra])
    assert snapshot(runs) == before, f"study {command} changed the stored results"
    return result


# -- studies ---------------------------------------------------------------------------------------


def test_a_huge_seed_count_is_refused_before_any_unit_is_expanded(runs, tmp_path):
    path = study_file(tmp_path, lambda d: d.update(seeds=10**30))
    fails_cleanly(study("status", path, runs, *FAKE), "bad.yaml", "seeds", "10000")


def test_a_sweep_grid_too_large_is_refused_before_it_is_visited(runs, tmp_path):
    def huge(d):
        d["processes"]["agent"]["sweep"] = {"params.offset": list(range(300)), "params.slope": list(range(300))}

    start = time.perf_counter()
    fails_cleanly(study("status", study_file(tmp_path, huge), runs, *FAKE), "processes.agent.sweep", "270_000 units", "100_000")
    assert time.perf_counter() - start < 30


def test_corpus_episodes_beyond_the_bound_are_refused(runs, tmp_path):
    path = study_file(tmp_path, lambda d: d["corpora"]["mixed"].update(episodes=10**13))
    fails_cleanly(study("status", path, runs, *FAKE), "corpora.mixed.episodes", "10000000000000", "10_000_000")


def test_a_scale_value_beyond_the_episode_bound_is_refused(runs, tmp_path):
    path = study_file(tmp_path, lambda d: d["scale"].update(episodes=10**13))
    fails_cleanly(study("status", path, runs, *FAKE), "corpora.mixed.episodes", "scale.episodes = 10000000000000")


def test_training_steps_beyond_the_bound_are_refused_at_validation(runs, tmp_path):
    def ppo(d):
        d.update(profiles={}, lenses={}, hypotheses=[])
        d["processes"] = {"ppo": {"kind": "reinforce", "world": "coin", "params": {"total_steps": 10**20}}}

    fails_cleanly(study("run", study_file(tmp_path, ppo), runs), "processes.ppo.params.total_steps", "1000000000")


@pytest.mark.parametrize("seed", [-1, 2**40])
def test_a_corpus_seed_outside_what_prngkey_takes_is_refused(runs, tmp_path, seed):
    path = study_file(tmp_path, lambda d: d["corpora"]["mixed"].update(seed=seed))
    fails_cleanly(study("run", path, runs, *FAKE), "corpora.mixed.seed", str(seed))


def test_a_root_that_is_a_file_is_refused(tmp_path):
    root = tmp_path / "afile"
    root.write_text("not a folder")
    path = study_file(tmp_path, lambda d: None)
    r = runner.invoke(app, ["study", "run", str(path), "--root", str(root), *FAKE])
    fails_cleanly(r, str(root), "is not a directory")
    assert root.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["status", "run", "report"])
@pytest.mark.parametrize("damage", ["random bytes", "truncated", "emptied"])
def test_a_corrupt_results_store_is_reported_with_the_way_to_recover(runs, tmp_path, command, damage):
    db = runs / "toy" / "results.sqlite"
    whole = db.read_bytes()
    damaged = {"random bytes": np.random.default_rng(0).bytes(len(whole)), "truncated": whole[: len(whole) // 2], "emptied": b""}
    db.write_bytes(damaged[damage])
    path = study_file(tmp_path, lambda d: None)
    line = fails_cleanly(study(command, path, runs, *FAKE), str(db), "move it away")
    assert ("shorter than the pages its header counts" if damage == "truncated" else "not a SQLite database") in line


def test_a_key_written_twice_in_a_study_file_is_an_error(runs, tmp_path):
    path = tmp_path / "twice.yaml"
    text = yaml.safe_dump(BASE)
    path.write_text(text + "seeds: 30\n")
    line = fails_cleanly(study("run", path, runs, *FAKE), "'seeds'", f"line {len(text.splitlines()) + 1}", "written twice")
    first = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("seeds:"))
    assert f"first on line {first}" in line


# -- corpora and models ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored_corpus(tmp_path_factory) -> Path:
    corpus = make_corpus(task("coin-7x7", horizon=8), parse_mixture("seeker:1,random:1"), 16, seed=0)
    return corpus.save(tmp_path_factory.mktemp("corpus") / "c")


def resigned(corpus_dir: Path, tmp_path: Path, array: str, change) -> Path:
    """A copy of the corpus with `change` applied to one array and the manifest's checksum re-signed."""
    out = Path(shutil.copytree(corpus_dir, tmp_path / "resigned"))
    values = np.load(out / f"{array}.npy")
    change(values)
    np.save(out / f"{array}.npy", values, allow_pickle=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["arrays"][array]["sha256"] = sha256_file(out / f"{array}.npy")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _set(index, value):
    def change(values):
        values[index] = value

    return change


OUT_OF_RANGE = {  # array -> (change, the words of the error)
    "actions": (_set((0, 0), 9), "action 9, outside 0..4"),
    "states": (_set((1, 0, 0), 30_000), "agent row"),
    "scene": (_set((0, 5), 200), "tile id"),
    "character": (_set(2, 5), "character index 5, outside 0..1"),
    "length": (_set(3, 0), "episode length 0, outside 1..8"),
    "reward": (_set((0, 1), np.nan), "not a finite number"),
}


@pytest.mark.parametrize("array", sorted(OUT_OF_RANGE))
def test_corpus_show_refuses_out_of_range_arrays_even_with_a_resigned_checksum(stored_corpus, tmp_path, array):
    change, words = OUT_OF_RANGE[array]
    path = resigned(stored_corpus, tmp_path, array, change)
    fails_cleanly(runner.invoke(app, ["corpus", "show", str(path)]), str(path), f"array {array!r}", words, "corrupt")


def test_model_train_refuses_a_corpus_with_out_of_range_actions(stored_corpus, tmp_path):
    path = resigned(stored_corpus, tmp_path, "actions", OUT_OF_RANGE["actions"][0])
    out = tmp_path / "model"
    r = runner.invoke(app, ["model", "train", str(path), "-o", str(out), "--steps", "2", "--d-model", "16", "--d-mlp", "16"])
    fails_cleanly(r, "array 'actions'", "corrupt")
    assert not out.exists()


def test_model_fidelity_refuses_params_that_do_not_decode(stored_corpus, tmp_path):
    model = tmp_path / "model"
    spec = ModelSpec(d_model=16, n_layers=1, n_heads=2, d_mlp=16)
    Simulator.init(spec, task("coin-7x7", horizon=8), jax.random.PRNGKey(0)).save(model)
    blob = np.random.default_rng(1).bytes(4096)
    (model / "params.msgpack").write_bytes(blob)
    card = json.loads((model / "card.json").read_text())
    (model / "card.json").write_text(json.dumps({**card, "params_sha256": hashlib.sha256(blob).hexdigest()}))
    r = runner.invoke(app, ["model", "fidelity", str(model), "--corpus", str(stored_corpus), "--dreams", "0"])
    fails_cleanly(r, str(model), "params.msgpack cannot be decoded")


def test_corpus_make_refuses_more_episodes_than_the_bound_before_allocating(tmp_path):
    out = tmp_path / "c"
    fails_cleanly(runner.invoke(app, ["corpus", "make", "coin-7x7", "-n", "1000000000000", "-o", str(out)]), "1..10,000,000")
    assert not out.exists()


# -- worlds ----------------------------------------------------------------------------------------


def test_a_knob_value_of_the_wrong_type_names_the_knob():
    fails_cleanly(runner.invoke(app, ["world", "show", "coin-7x7", "-s", "horizon=1e3"]), "knob horizon", "'1e3'")
    fails_cleanly(runner.invoke(app, ["world", "show", "coin-7x7", "-s", "interrupt_prob=half"]), "knob interrupt_prob", "'half'")


def test_a_binary_map_file_is_named(tmp_path):
    path = tmp_path / "map.bin"
    path.write_bytes(bytes(range(256)))
    fails_cleanly(runner.invoke(app, ["world", "show", str(path)]), f"map file {path}", "not text")


# -- killed writes ---------------------------------------------------------------------------------

KILLED_WRITER = """
import sys, time
from pathlib import Path
from simulacra.atomic import write_dir

def fill(tmp):
    (tmp / "half.npy").write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(600)

write_dir(Path(sys.argv[1]), fill)
"""


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "corpus"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    leftovers = list(tmp_path.glob(".corpus.tmp-*"))
    assert len(leftovers) == 1 and not target.exists()
    write_dir(target, lambda tmp: (tmp / "whole.npy").write_bytes(b"y"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"] and (target / "whole.npy").read_bytes() == b"y"


def test_only_abandoned_leftovers_of_the_same_target_are_removed(tmp_path):
    mine = os.getpid()
    entries = {
        f".corpus.tmp-{mine}-0000000a": True,  # a write in progress in a live process: kept
        ".other.tmp-999999999-0000000b": True,  # another target's: kept
        ".corpus.tmp-999999999-0000000c": False,  # its process is gone
        f".corpus.old-{mine}-0000000d": False,  # too old, whatever its pid says
        ".corpus.tmp-0000000e": False,  # an earlier version's name (no pid), too old
        f".corpus.tmp-{mine}-0000000f.keep": True,  # not a name write_dir makes
    }
    for name in entries:
        (tmp_path / name).mkdir()
    for name in (f".corpus.old-{mine}-0000000d", ".corpus.tmp-0000000e"):
        past = time.time() - STALE_AFTER_S - 60
        os.utime(tmp_path / name, (past, past))
    write_dir(tmp_path / "corpus", lambda tmp: None)
    assert {p.name for p in tmp_path.iterdir()} == {"corpus", *(name for name, kept in entries.items() if kept)}


@pytest.mark.parametrize(
    "args, says",
    [
        (["study", "run", "--bogus"], "No such option: --bogus"),
        (["study", "run"], "Missing argument"),
        (["corpus", "make", "coin-7x7", "-n", "abc"], "'-n' / '--episodes'"),
    ],
)
def test_usage_errors_are_one_line_on_stderr_with_exit_2(args, says):
    """The installed command (`simulacra.cli:main`): click's boxed usage message becomes one line."""
    out = subprocess.run([sys.executable, "-m", "simulacra.cli", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], out.stderr
