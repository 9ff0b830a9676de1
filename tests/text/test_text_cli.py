"""The text world on the command line: text show, corpus make/show, model train/show/dream, and
their bad inputs (one line on stderr, exit 2, nothing written)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from simulacra.cli import app
from tests.test_bad_input import fails_cleanly, snapshot

runner = CliRunner()


def test_text_show_unfolds_the_posterior():
    r = runner.invoke(app, ["text", "show", "--mix", "sailor:1,friendly:1", "-s", "max_sentences=2"])
    assert r.exit_code == 0, r.output
    assert "sailor" in r.output and "friendly" in r.output and "P(swear | tail)" in r.output
    assert "likeliest" in r.output and "(all words)" in r.output


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "c"
    r = runner.invoke(app, ["corpus", "make", "text", "--mix", "sailor:1,friendly+sailor:1,friendly:1", "-n", "300", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 300 documents" in r.output
    return out


def test_corpus_show_summarises_a_text_corpus(text_corpus):
    r = runner.invoke(app, ["corpus", "show", str(text_corpus)])
    assert r.exit_code == 0, r.output
    for words in ("friendly+sailor", "swear words/doc", "ideal nats/word"):
        assert words in r.output


def test_train_show_and_dream(text_corpus, tmp_path):
    out = tmp_path / "m"
    r = runner.invoke(app, ["model", "train", str(text_corpus), "-o", str(out), "--steps", "20", "--d-model", "16", "--d-mlp", "32",
                            "--warmup", "5", "--character"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["model", "show", str(out)])
    assert r.exit_code == 0 and "the persona's tag" in r.output, r.output
    r = runner.invoke(app, ["model", "dream", str(out), "-n", "3", "--persona", "friendly+sailor"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("[friendly+sailor]") for line in lines)
    # the same seed dreams the same documents
    assert runner.invoke(app, ["model", "dream", str(out), "-n", "3", "--persona", "friendly+sailor"]).stdout == r.stdout
    fails_cleanly(runner.invoke(app, ["model", "dream", str(out)]), "names a persona")
    fails_cleanly(runner.invoke(app, ["model", "dream", str(out), "--persona", "pirate"]), "unknown trait 'pirate'")


@pytest.mark.parametrize(
    "args, words",
    [
        (["corpus", "make", "text", "--mix", "pirate:1", "-n", "5"], "unknown trait 'pirate'"),
        (["corpus", "make", "text", "--mix", "sailor:-0.5", "-n", "5"], "not a probability weight"),
        (["corpus", "make", "text", "-s", "tail.damn=3", "-n", "5"], "must look like state.word.term=value"),
        (["corpus", "make", "text", "-s", "tail.heck.sailor=3", "-n", "5"], "offers no word 'heck'"),
        (["text", "show", "--mix", "sailor+sailor"], "appears twice"),
        (["text", "show", "-s", "max_sentences=99"], "max_sentences"),
    ],
)
def test_bad_text_input_is_one_line_and_writes_nothing(tmp_path, args, words):
    args = [*args, "-o", str(tmp_path / "out")] if args[0] == "corpus" else args
    fails_cleanly(runner.invoke(app, args), words)
    assert not (tmp_path / "out").exists()


def test_a_text_corpus_given_to_gridworld_commands(text_corpus, tmp_path):
    before = snapshot(text_corpus)
    fails_cleanly(runner.invoke(app, ["corpus", "filter", str(text_corpus), str(tmp_path / "f"), "--top", "0.5"]), "is a text corpus")
    fails_cleanly(runner.invoke(app, ["model", "train", str(text_corpus), "-o", str(tmp_path / "m"), "--rtg"]), "takes no --rtg")
    assert snapshot(text_corpus) == before and not (tmp_path / "f").exists() and not (tmp_path / "m").exists()
