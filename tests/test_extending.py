"""docs/extending.md runs as written: every code block of each section, in order (blocks that begin
with `# file: NAME` are written to a scratch directory, `bash` lines run the installed CLI)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def sections() -> dict[str, list[tuple[str, str]]]:
    """Section title -> [(language, code)] of its fenced blocks."""
    out: dict[str, list[tuple[str, str]]] = {}
    for part in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        title = part.splitlines()[0].strip()
        out[title] = [(m.group(1), m.group(2)) for m in BLOCK.finditer(part)]
    return out


def run_blocks(blocks: list[tuple[str, str]], where: Path) -> None:
    namespace: dict = {"__name__": "extending_example"}
    for lang, code in blocks:
        first = code.splitlines()[0]
        if first.startswith("# file: "):
            (where / first.removeprefix("# file: ").strip()).write_text(code)
        elif lang == "python":
            exec(compile(code, f"{DOC.name} ({lang} block)", "exec"), namespace)
        elif lang == "bash":
            cli = Path(sys.executable).with_name("simulacra")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(where), os.environ.get("PYTHONPATH", "")])}
            for line in code.splitlines():
                if line.startswith("simulacra "):
                    args = shlex.split(line.split("#")[0])[1:]
                    done = subprocess.run([str(cli), *args], cwd=where, env=env, capture_output=True, text=True)
                    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        else:
            raise AssertionError(f"a {lang} block in {DOC.name} must begin with '# file: NAME'")


def test_the_page_has_the_four_walk_throughs():
    titles = list(sections())
    assert titles == ["1. A world piece", "2. A character", "3. A process kind", "4. A hypothesis"]
    assert all(sections()[t] for t in titles)


@pytest.mark.parametrize("title", ["1. A world piece", "2. A character"])
def test_a_walk_through_runs(title, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_blocks(sections()[title], tmp_path)


def test_a_plugin_kind_with_its_own_section_reaches_the_report(tmp_path, monkeypatch):
    """The kind of section 3, loaded with --plugin, runs the study of section 4; its report section
    appears in the report with no change to `simulacra.report`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = sections()
    run_blocks(found["3. A process kind"] + found["4. A hypothesis"], tmp_path)
    html = (tmp_path / "runs" / "wander" / "report.html").read_text()
    assert "Wandering" in html and "Episode length vs stay" in html
