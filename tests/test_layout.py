"""The package layout follows the pipeline: a module imports only from its own stage and the
stages to its left, in the order docs/architecture.md states (lazy imports inside functions
included), so there are no import cycles between stages."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "simulacra"
SHARED = {"atomic", "compilation", "progress"}  # small utilities any stage may use
"""Top-level modules outside the pipeline's stages."""


def pipeline() -> list[str]:
    """The stage order: the arrow line under "## Layers" in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    m = re.search(r"^## Layers\n(?:.*\n)*?`([a-z]+(?: → [a-z]+)+)`", text, re.M)
    assert m, "docs/architecture.md has no '## Layers' section with a `world → … → cli` line"
    return m.group(1).split(" → ")


def stage_of(module: str) -> str | None:
    """`simulacra.model.simulator` -> "model"; `simulacra` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "simulacra" else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `simulacra` import in a source file, wherever it stands."""
    tree = ast.parse(path.read_text(), str(path))
    package = list(path.relative_to(SRC.parent).with_suffix("").parts[:-1])  # the file's package
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: level 1 is the file's own package, 2 its parent …
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))
    return [(line, m) for line, m in out if m == "simulacra" or m.startswith("simulacra.")]


def test_every_stage_is_in_the_documented_order():
    order = pipeline()
    stages = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if not p.name.startswith("_") and p.name != "py.typed"}
    missing = sorted(stages - set(order) - SHARED)
    assert not missing, f"stages not placed in docs/architecture.md's order: {missing}"


def test_no_module_imports_a_stage_to_its_right():
    order = pipeline()
    rank = {s: i for i, s in enumerate(order)}
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        own = stage_of(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        if own is None or own in SHARED:
            continue
        for line, module in imports(path):
            other = stage_of(module)
            if other is None or other in SHARED or other == own:
                continue
            if rank[other] > rank[own]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {module} ({other})")
    assert not bad, "imports against the pipeline:\n" + "\n".join(bad)


def test_the_check_catches_an_import_to_the_right(tmp_path):
    """The walker sees lazy imports inside functions and relative imports."""
    f = tmp_path / "simulacra" / "world" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text("def f():\n    from simulacra.report import write_report\n    from ..studies import run\n")
    global SRC
    saved, SRC = SRC, tmp_path / "simulacra"
    try:
        found = [m for _, m in imports(f)]
    finally:
        SRC = saved
    assert found == ["simulacra.report", "simulacra.studies"]
