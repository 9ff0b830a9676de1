"""docs/world.md must match the code it documents."""

import re
from pathlib import Path

from simulacra.world import LEGEND, Vocab

DOC = (Path(__file__).parents[2] / "docs" / "world.md").read_text()


def test_token_table_matches_the_vocabulary():
    rows = re.findall(r"^\| `([A-Z]+)` \| (\d+) \| (\d+) \|", DOC, flags=re.M)
    assert {name for name, *_ in rows} == set(Vocab.RANGES)
    for name, start, size in rows:
        assert getattr(Vocab, name) == (int(start), int(size)), name
    assert f"`Vocab`, {Vocab.SIZE} ids" in DOC


def test_legend_table_lists_every_map_character():
    chars = re.findall(r"^\| `(.)` \|", DOC, flags=re.M)
    assert set(chars) == set(LEGEND)


def test_named_task_table_lists_every_task():
    from simulacra.world import TASKS

    section = DOC.split("## Named tasks", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z0-9-]+)`", " ".join(re.findall(r"^\| (.+?) \|", section, flags=re.M))))
    assert listed == set(TASKS)
