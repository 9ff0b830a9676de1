"""The command line, through typer's test runner."""

import json
import re

from typer.testing import CliRunner

from simulacra.cli import app

runner = CliRunner()


def test_world_show_prints_the_map_and_parameters():
    r = runner.invoke(app, ["world", "show", "offswitch", "-s", "interrupt_prob=0.25"])
    assert r.exit_code == 0, r.output
    assert "#A.I...c#" in r.output and "interrupt_prob" in r.output and "0.25" in r.output
    assert "optimal return" in r.output


def test_world_show_reads_a_map_file(tmp_path):
    f = tmp_path / "room.txt"
    f.write_text("#######\n#A..c.#\n#.....#\n#.....#\n#######\n")
    r = runner.invoke(app, ["world", "show", str(f)])
    assert r.exit_code == 0, r.output
    assert "room" in r.output


def test_bad_input_gives_one_clear_error():
    r = runner.invoke(app, ["world", "show", "nope"])
    assert r.exit_code == 2 and "unknown task 'nope'" in r.output
    r = runner.invoke(app, ["world", "show", "offswitch", "-s", "interrupt_prob=7"])
    assert r.exit_code == 2 and "interrupt_prob" in r.output
    r = runner.invoke(app, ["world", "show", "offswitch", "-s", "colour=red"])
    assert r.exit_code == 2 and "unknown knob 'colour'" in r.output


def test_world_list_and_demo():
    r = runner.invoke(app, ["world", "list"])
    assert r.exit_code == 0 and "coin-9x9" in r.output
    r = runner.invoke(app, ["demo", "--envs", "64", "--steps", "10"])
    assert r.exit_code == 0, r.output
    assert "episode terminated" in r.output and "steps/s" in r.output


def test_corpus_make_and_show(tmp_path):
    out = tmp_path / "c"
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "--mix", "seeker:0.5,random:0.5", "-n", "64", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 64 episodes" in r.output and (out / "manifest.json").is_file()
    r = runner.invoke(app, ["corpus", "show", str(out)])
    assert r.exit_code == 0, r.output
    for text in ("returns by character", "event rates", "ideal predictor", "seeker(0.1)", "action"):
        assert text in r.output
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "-n", "8", "-o", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "--mix", "seker:1", "-n", "8", "-o", str(tmp_path / "d")])
    assert r.exit_code == 2 and "unknown character 'seker'" in r.output
    (out / "actions.npy").write_bytes(b"garbage")
    r = runner.invoke(app, ["corpus", "show", str(out)])
    assert r.exit_code == 2 and "checksum mismatch" in r.output


def test_corpus_errors_are_one_line(tmp_path):
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "-n", "0", "-o", str(tmp_path / "c")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    (tmp_path / "afile").write_text("x")
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "-n", "4", "-o", str(tmp_path / "afile" / "sub")])
    assert r.exit_code == 2 and "is not a directory" in r.output
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "-n", "4", "-o", str(tmp_path / "afile"), "--force"])
    assert r.exit_code == 2 and "not a simulacra corpus" in r.output


def test_model_train_show_fidelity_condition(tmp_path):
    tiny = ["--steps", "6", "--warmup", "1", "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-mlp", "32", "--batch-size", "8"]
    for name, seed in (("c", "0"), ("held", "1")):
        r = runner.invoke(app, ["corpus", "make", "coin-7x7", "-s", "horizon=8", "-n", "40", "--seed", seed, "-o", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "m"), *tiny])
    assert r.exit_code == 0, r.output
    assert "trained 6 steps" in r.output and (tmp_path / "m" / "card.json").exists()
    r = runner.invoke(app, ["model", "show", str(tmp_path / "m")])
    assert r.exit_code == 0 and "coin-7x7" in r.output and "seeker" in r.output, r.output
    r = runner.invoke(app, ["model", "fidelity", str(tmp_path / "m"), "--corpus", str(tmp_path / "held"), "--dreams", "8"])
    assert r.exit_code == 0, r.output
    assert "excess" in r.output and "legal" in r.output
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "dt"), "--rtg", "--grid", "--rtg-numeric", *tiny])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "dt" / "card.json").read_text())
    assert card["model_spec"]["grid"] and card["model_spec"]["rtg_numeric"], card["model_spec"]
    r = runner.invoke(app, ["model", "condition", str(tmp_path / "dt"), "-n", "8", "--targets", "0,1"])
    assert r.exit_code == 0 and "return sweep" in r.output, r.output
    # errors: one line, nothing written
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "m"), *tiny])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["model", "train", str(tmp_path / "nope"), "-o", str(tmp_path / "m2"), *tiny])
    assert r.exit_code == 2 and not (tmp_path / "m2").exists()
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "m3"), "--rtg-numeric", *tiny])
    assert r.exit_code == 2 and "needs rtg=True" in r.output and not (tmp_path / "m3").exists()
    r = runner.invoke(app, ["model", "fidelity", str(tmp_path / "dt"), "--corpus", str(tmp_path / "held")])
    assert r.exit_code == 2 and "unconditioned" in r.output
    r = runner.invoke(app, ["model", "condition", str(tmp_path / "m")])
    assert r.exit_code == 2 and "nothing to condition on" in r.output
    r = runner.invoke(app, ["model", "show", str(tmp_path / "c")])
    assert r.exit_code == 2 and "not a checkpoint" in r.output


def test_study_run_status_report_list(tmp_path):
    import yaml

    from tests.studies.test_study_files import BASE

    study = tmp_path / "studies" / "toy.yaml"
    study.parent.mkdir()
    study.write_text(yaml.safe_dump(BASE))
    plug = ["--plugin", "tests.studies.fake_processes"]
    root = ["--root", str(tmp_path / "runs")]
    r = runner.invoke(app, ["study", "status", str(study), *root, *plug])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "runs").exists()  # status creates nothing
    r = runner.invoke(app, ["study", "run", str(study), *root, *plug])
    assert r.exit_code == 0, r.output
    assert "findings" in r.output and "report:" in r.output
    name = yaml.safe_load(study.read_text())["name"]
    html = tmp_path / "runs" / name / "report.html"
    assert html.exists() and (tmp_path / "runs" / name / "report.md").exists()
    r = runner.invoke(app, ["study", "run", str(study), *root, *plug, "--no-report"])
    assert r.exit_code == 0 and "0 unit(s) run" in r.output, r.output
    r = runner.invoke(app, ["study", "report", str(study), *root, *plug])
    assert r.exit_code == 0 and "wrote" in r.output, r.output
    r = runner.invoke(app, ["study", "list", str(study.parent), *plug])
    assert r.exit_code == 0 and name in r.output, r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "colour": "red"}))
    r = runner.invoke(app, ["study", "run", str(bad), *root, *plug])
    assert r.exit_code == 2 and "colour" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = runner.invoke(app, ["study", "report", str(study), "--root", str(tmp_path / "elsewhere"), *plug])
    assert r.exit_code == 2 and "no results" in r.output


def test_model_evaluate_acts_any_model_and_refuses_a_prompt_it_cannot_take(tmp_path):
    tiny = ["--steps", "4", "--warmup", "1", "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-mlp", "32", "--batch-size", "8"]
    r = runner.invoke(app, ["corpus", "make", "keydoor", "-s", "horizon=12", "-n", "32", "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "generating: 32/32 episodes (100%)" in r.output  # not a terminal: progress as plain lines
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "mt"), "--future-heads", "0", *tiny])
    assert r.exit_code == 2 and "future_heads=0" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "mt").exists()
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "bc"), "--loss-on", "actions", *tiny])
    assert r.exit_code == 0, r.output
    assert "training: 4/4 steps (100%)" in r.output and "loss " in r.output
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "bc"), "-n", "8"])
    assert r.exit_code == 0, r.output
    for text in ("success", "fraction of optimal", "episodes with key", "episodes with door", "shortest path (key and door respected)", "8 episodes"):
        assert text in r.output, text
    assert "out-of-distribution" not in r.output  # no corpus, no law to score the actions by
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "bc"), "-n", "8", "--corpus", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    ood = re.search(r"out-of-distribution actions .*?(\d\.\d{4})", r.output.replace("\n", " "))
    assert ood and 0.0 <= float(ood.group(1)) <= 1.0, r.output
    assert "mean log-probability of the actions" in r.output and "corpus's own actions" in r.output
    r = runner.invoke(app, ["corpus", "make", "keydoor", "-s", "horizon=10", "-n", "8", "-o", str(tmp_path / "c10")])
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "bc"), "-n", "8", "--corpus", str(tmp_path / "c10")])
    assert r.exit_code == 2 and "its law cannot score these episodes" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "bc"), "--target", "1"])
    assert r.exit_code == 2 and "no return-to-go slots" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "bc"), "--character", "seeker"])
    assert r.exit_code == 2 and "no character slot" in r.output
    r = runner.invoke(app, ["model", "train", str(tmp_path / "c"), "-o", str(tmp_path / "dt"), "--rtg", "--character", "--loss-on", "actions", *tiny])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "dt"), "-n", "8", "--target", "0.5", "--character", "random", "--temperature", "0"])
    assert r.exit_code == 0, r.output
    assert "target 0.5, character random" in r.output and "excess steps" in r.output
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "dt"), "-n", "8", "--character", "nobody"])
    assert r.exit_code == 2 and "nobody" in r.output
    r = runner.invoke(app, ["model", "evaluate", str(tmp_path / "dt"), "--world", "coin-7x7"])
    assert r.exit_code == 2 and "does not fit" in r.output


def test_corpus_filter_writes_the_top_episodes_with_their_lineage(tmp_path):
    r = runner.invoke(app, ["corpus", "make", "coin-7x7", "-s", "horizon=8", "-n", "40", "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["corpus", "filter", str(tmp_path / "c"), str(tmp_path / "top"), "--top", "0.25", "--per-character"])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "of 40 episodes" in r.output
    manifest = json.loads((tmp_path / "top" / "manifest.json").read_text())
    assert manifest["filter"] == {"top": 0.25, "per_character": True} and manifest["parent"]["path"] == str(tmp_path / "c")
    r = runner.invoke(app, ["corpus", "show", str(tmp_path / "top"), "--no-ideal"])
    assert r.exit_code == 0 and "parent" in r.output and "top 0.25 by return within each character" in r.output, r.output
    before = (tmp_path / "top" / "manifest.json").read_bytes()
    r = runner.invoke(app, ["corpus", "filter", str(tmp_path / "c"), str(tmp_path / "top"), "--top", "0.5"])
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output
    assert (tmp_path / "top" / "manifest.json").read_bytes() == before  # nothing overwritten
    r = runner.invoke(app, ["corpus", "filter", str(tmp_path / "c"), str(tmp_path / "top"), "--top", "0.5", "--force"])
    assert r.exit_code == 0 and json.loads((tmp_path / "top" / "manifest.json").read_text())["filter"]["top"] == 0.5
    r = runner.invoke(app, ["corpus", "filter", str(tmp_path / "c"), str(tmp_path / "t2"), "--top", "1.5"])
    assert r.exit_code == 2 and "(0, 1]" in r.output and not (tmp_path / "t2").exists()
    r = runner.invoke(app, ["corpus", "filter", str(tmp_path / "nope"), str(tmp_path / "t3"), "--top", "0.5"])
    assert r.exit_code == 2 and not (tmp_path / "t3").exists()
