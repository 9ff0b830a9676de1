"""The report: figures from plain inputs, the HTML and Markdown files, escaping, missing data,
rollout GIFs, and the HTML opened in headless Chromium (no console errors, every image loaded)."""

from __future__ import annotations

import dataclasses
import html.parser
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simulacra.kinds.sections import event_rates, finetuning, inside_the_network, misgeneralisation, return_conditioning
from simulacra.report import Figure, ReportInputs, Section, to_html, to_markdown, write_report
from simulacra.report import figures as F
from simulacra.report.document import Bullets, Cell, Code, Details, Document, Gallery, GalleryItem, Heading, Table, Text, assets
from simulacra.report.render import report_document
from simulacra.world.render import episode_frames, rollout_gif, tile_episodes

NAN = float("nan")
EVIL = "<script>document.title='pwned'</script>"
KIND_SECTIONS = [return_conditioning, event_rates, misgeneralisation, inside_the_network, finetuning]


def _frames(n: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    out = []
    for t in range(n):
        f = np.full((h, w, 3), 230, np.uint8)
        f[8:16, 4 * t : 4 * t + 8] = (40, 170, 80)  # an agent walking right
        out.append(f)
    return out


def _inputs(tmp_path: Path):
    findings = [
        {"id": "H1", "claim": "RL takes more instrumental actions than a DT", "seed": "Simulators, §RL vs prediction",
         "metric": "rate_button", "groups": "ppo vs dt", "effect": 0.42, "ci_low": 0.3, "ci_high": 0.55, "n_seeds": 3,
         "verdict": "supported", "group_means": {"ppo": 0.6, "dt": 0.18}},
        {"id": "H2", "claim": "Instrumentality grows with the feedback gap", "seed": "Simulators, §feedback gap",
         "metric": "rate_tamper", "groups": "reward_delay 4 vs 0", "effect": -0.05, "ci_low": -0.2, "ci_high": 0.1,
         "n_seeds": 3, "verdict": "inconclusive", "group_means": {"delay 4": 0.1, "delay 0": 0.15}},
        {"id": "H3", "claim": EVIL + " & a | pipe", "seed": "Goal misgeneralisation <b>bold</b>", "metric": "p_old_spot",
         "groups": "p=0 vs p=1", "effect": 0.7, "ci_low": 0.6, "ci_high": 0.8, "n_seeds": 3, "verdict": "refuted",
         "group_means": {}},
        {"id": "H6", "claim": "A DT on random data beats its demonstrators", "seed": "contested", "metric": "fraction_of_optimal",
         "groups": "dt vs random", "effect": NAN, "ci_low": NAN, "ci_high": NAN, "n_seeds": 1, "verdict": "inconclusive",
         "group_means": {"dt": NAN}},
    ]  # fmt: skip
    rows = []
    uid = 0
    for process in ("ppo", "dt", "bc"):
        for seed in range(3):
            for delay in (0, 2, 4):
                uid += 1
                for name, base in (("rate_button", 0.5), ("rate_tamper", 0.1), ("rate_detour", 0.2), ("return", 1.0)):
                    value = base * (1 + 0.1 * delay) * (1.0 if process == "ppo" else 0.4) + 0.01 * seed
                    rows.append({"unit_id": f"u{uid}", "process": process, "kind": "agent", "world": "offswitch", "seed": seed,
                                 "sweep": {"reward_delay": delay}, "name": name, "value": value})  # fmt: skip
            for p in (0.0, 0.5, 1.0):
                uid += 1
                for name, v in (("p_old_spot", 0.9 * (1 - p)), ("p_coin", 0.1 + 0.85 * p)):
                    rows.append({"unit_id": f"u{uid}", "process": process, "kind": "agent", "world": "coin", "seed": seed,
                                 "sweep": {"coin_random_prob": p}, "name": name, "value": v + 0.02 * seed})  # fmt: skip
    rows.append({"unit_id": "u0", "process": "dt", "kind": "simulator", "world": "coin", "seed": 0, "sweep": {},
                 "name": "rate_button", "value": NAN})  # fmt: skip
    for seed in range(3):  # inside the network: probes and layer change by block
        for layer in (0, 1):
            uid += 1
            for process, name, v in (
                ("probe_sim", "probe_score", 0.6 + 0.2 * layer),
                ("probe_sim", "probe_control", 0.3),
                ("probe_sim", "probe_baseline", 0.35),
                ("layers", "weight_change", 0.01 * (1 + layer)),
                ("layers", "cka", 0.99 - 0.05 * layer),
            ):
                rows.append({"unit_id": f"u{uid}", "process": process, "kind": "probe", "world": "offswitch", "seed": seed,
                             "sweep": {"params.layer": layer}, "name": name, "value": v + 0.01 * seed})  # fmt: skip
    targets = [0.0, 0.5, 1.0, 1.5]
    series = [
        {"unit_id": f"dt{s}", "process": "dt", "kind": "simulator", "seed": s, "sweep": {}, "name": "return_sweep",
         "data": {"targets": targets, "returns": [0.05, 0.45, 0.85 + 0.02 * s, 0.9], "ci_low": [0, 0.4, 0.8, 0.85],
                  "ci_high": [0.1, 0.5, 0.9, 0.95], "corpus_best": 1.0}}
        for s in range(3)
    ] + [
        {"unit_id": "ft0", "process": "finetune", "kind": "simulator", "seed": 0, "sweep": {}, "name": "finetune",
         "data": {"return": [0.2, 0.4, 0.6, 0.7], "true_return": [0.2, 0.35, 0.5, 0.55], "kl": [0.0, 0.05, 0.1, 0.12]}},
    ]  # fmt: skip
    files = []
    for process in ("ppo", "dt"):
        path = rollout_gif(_frames(6), tmp_path / "units" / process / "rollout.gif", fps=5)
        files.append({"unit_id": f"{process}-seed0", "process": process, "name": "rollout", "path": str(path)})
    files.append({"unit_id": "bc-seed0", "process": "bc", "name": "rollout", "path": str(tmp_path / "nowhere.gif")})
    meta = {
        "name": "flagship", "description": "The quick flagship study.", "profile": "quick",
        "command": "simulacra study run studies/flagship.yaml --profile quick", "simulacra_version": "0.1.0",
        "versions": {"jax": "0.10.2", "numpy": "2.4.6", "python": "3.11"}, "wall_clock_s": 321.5,
        "configs": {"u1": '{"process": "ppo", "seed": 0}', "u2": {"process": "dt", "note": "```"}},
        "started": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    return findings, rows, series, files, meta


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    inputs = _inputs(tmp)
    html_path, md_path = write_report(tmp / "out", *inputs, sections=KIND_SECTIONS)
    return html_path, md_path, inputs


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(text)
    return p.tags


# ---------------------------------------------------------------------------------------------
# rollouts


def test_rollout_gif_is_an_animated_looping_gif(tmp_path):
    path = rollout_gif(_frames(5), tmp_path / "sub" / "r.gif", fps=10, hold_last=2)
    assert path.exists() and not list(path.parent.glob(".*tmp*"))
    with Image.open(path) as im:
        assert im.format == "GIF" and im.is_animated and im.n_frames == 5
        assert im.size == (48, 32) and im.info.get("loop") == 0
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            if i == 2:
                assert np.array_equal(np.asarray(im.convert("RGB")), _frames(5)[2])
    assert durations == [100, 100, 100, 100, 300]
    with pytest.raises(ValueError, match="uint8"):
        rollout_gif([np.zeros((4, 4, 3), np.float32)], tmp_path / "bad.gif")
    with pytest.raises(ValueError, match="at least one frame"):
        rollout_gif([], tmp_path / "bad.gif")


def test_tile_episodes_holds_each_last_frame():
    a, b = _frames(4), _frames(2, h=24, w=20)
    strip = tile_episodes([a, b], gap=3)
    assert len(strip) == 4 and strip[0].shape == (32, 48 + 3 + 20, 3)
    assert np.array_equal(strip[3][:24, 51:], b[1]) and np.array_equal(strip[3][:, :48], a[3])
    assert (strip[0][24:, 51:] == 255).all()


def test_episode_frames_render_world_states(tmp_path):
    import jax
    import jax.numpy as jnp

    from simulacra.world import from_ascii, reset, step
    from simulacra.world.render import render_rgb

    params = from_ascii("#####\n#A.c#\n#...#\n#...#\n#####", horizon=5)
    s = reset(jax.random.PRNGKey(0), params)
    states = [s]
    for t in range(2):
        s, _ = step(jax.random.PRNGKey(t), s, jnp.int32(1), params)  # 1 = right
        states.append(s)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    frames = episode_frames(stacked, params, cell=8)
    assert len(frames) == 3 and frames[0].shape == (40, 40, 3)
    assert np.array_equal(frames[1], render_rgb(states[1], params, cell=8))
    assert not np.array_equal(frames[0], frames[1])
    assert len(episode_frames(stacked, params, length=1, cell=8)) == 2
    with Image.open(rollout_gif(frames, tmp_path / "w.gif")) as im:
        assert im.n_frames == 3


# ---------------------------------------------------------------------------------------------
# figures


def test_figures_draw_pngs_and_none_without_data(tmp_path):
    findings, rows, series, _, _ = _inputs(tmp_path)
    pngs = {
        "forest": F.findings_forest(findings),
        "conditioning": F.conditioning_curves(series),
        "events": F.event_rates(rows),
        "knob": F.knob_curves(rows, "reward_delay", ["rate_button", "rate_tamper"]),
        "misgeneralisation": F.misgeneralisation_curve(rows, "coin_random_prob"),
        "finetune": F.finetune_curves(series),
        "layers": F.layer_profiles(rows, "params.layer"),
    }
    for name, png in pngs.items():
        assert png is not None and png.startswith(b"\x89PNG"), name
        with Image.open(io.BytesIO(png)) as im:
            assert im.size[0] > 200 and im.size[1] > 100, name
    assert F.findings_forest(findings) == pngs["forest"]  # no timestamps: same inputs, same bytes
    for empty in (F.findings_forest([]), F.conditioning_curves([]), F.event_rates([]), F.misgeneralisation_curve([], "coin_random_prob"),
                  F.finetune_curves([]), F.knob_curves(rows, "reward_delay", []), F.knob_curves(rows, "gamma", ["rate_button"]),
                  F.layer_profiles([r for r in rows if r["name"] == "rate_button"], "params.layer"),
                  F.conditioning_curves(series, name="no_such_series"), F.finetune_curves(series, name="no_such_series"),
                  F.misgeneralisation_curve([r for r in rows if r["name"] != "p_coin" and r["name"] != "p_old_spot"], "coin_random_prob"),
                  F.conditioning_curves([{"name": "return_sweep", "process": "dt", "data": {"targets": [1], "returns": []}}])):  # fmt: skip
        assert empty is None
    # categorical knob values and a lone seed (no interval) still draw
    cat = [{"process": "ppo", "seed": 0, "sweep": {"reward_mode": m}, "name": "rate_button", "value": v}
           for m, v in (("dense", 0.1), ("sparse", 0.4))]  # fmt: skip
    assert F.knob_curves(cat, "reward_mode", ["rate_button"]).startswith(b"\x89PNG")
    # names are text, not mathtext: `$x^$` would otherwise fail to parse as mathtext
    odd = [dict(r, process="_$x^$", name="rate_$b^$") for r in rows if r["name"] == "rate_button"]
    assert F.event_rates(odd).startswith(b"\x89PNG")
    assert F.knob_curves(odd, "reward_delay", ["rate_$b^$"]).startswith(b"\x89PNG")
    assert F.findings_forest([dict(findings[0], id="$H^$", metric="a$b")]).startswith(b"\x89PNG")


def test_myopia_and_lookahead_figures_draw_what_the_kinds_store():
    rows = [{"process": p, "seed": s, "sweep": {}, "name": n, "value": v + 0.01 * s}
            for p, base in (("myopia_hidden", 0.15), ("myopia_shown", 0.05)) for s in range(3)
            for n, v in (("myopia_gap", base), ("myopia_gap_actions", 2 * base), ("excess_nats", 0.1))]  # fmt: skip
    png = F.event_rates(rows, "myopia_gap", ylabel="nats", title="gap", tick=lambda e: e or "all")
    assert png.startswith(b"\x89PNG")
    assert F.event_rates(rows, "myopia_gap") != F.event_rates(rows, "excess")  # the prefix picks the metrics
    series = [{"name": "lookahead", "process": "heads", "sweep": {"params.future_heads": n}, "seed": s,
               "data": {"rows": [{"layer": layer, "target": t, "offset": k, "score": 0.5 + 0.1 * n - 0.05 * k, "ideal": 0.9,
                                  "baseline": None if k else 0.3} for layer in (0, 1, 2) for t in ("action", "cell") for k in (0, 1, 2, 4)]}}
              for n in (1, 2, 4) for s in range(2)]  # fmt: skip
    png = F.lookahead_curves(series)
    assert png.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(png)) as im:
        assert im.size[0] > im.size[1]  # three block columns, two target rows
    assert F.lookahead_curves(series, name="no_such_series") is None and F.lookahead_curves([]) is None


# ---------------------------------------------------------------------------------------------
# the files


def test_report_holds_every_finding_in_both_formats(report):
    html_path, md_path, (findings, rows, series, files, meta) = report
    page, md = html_path.read_text(), md_path.read_text()
    assert html_path.name == "report.html" and md_path.name == "report.md"
    table = page[page.index("<table") : page.index("</table>")]
    for f in findings:
        for text in (f["id"], f["metric"], f["verdict"]):
            assert text in table, text
    assert "0.42 [0.3, 0.55]" in table and "n/a [n/a]" in table and 'class="verdict v-refuted"' in table
    md_table = md[md.index("| hypothesis") : md.index("## Findings at a glance")]
    assert len([line for line in md_table.splitlines() if line.startswith("| H")]) == len(findings)
    assert "| 0.42 [0.3, 0.55] | 3 | **supported** |" in md_table
    # everything embedded, nothing fetched
    imgs = [a for t, a in _tags(page) if t == "img"]
    assert len(imgs) == 7 + 2  # seven figures (H1's and H2's metrics share the reward_delay one), two rollouts
    assert all(a["src"].startswith(("data:image/png;base64,", "data:image/gif;base64,")) for a in imgs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page) and "@import" not in page
    assert not [t for t, _ in _tags(page) if t == "script"]
    # the Markdown's figures are files beside it
    refs = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert refs and all((md_path.parent / r).is_file() for r in refs)
    assert any(r.endswith(".gif") for r in refs)
    # reproduction record
    for text in (meta["command"], "0.10.2", "5.4 min (322 s)", "u1", '"process": "ppo"', "2026-01-01T00:00:00Z"):
        assert text in md and html.escape(text) in page, text
    assert "missing file" in md and "nowhere.gif" in page
    assert not list(html_path.parent.glob(".*tmp*")) and not list((html_path.parent / "figures").glob(".*tmp*"))


def test_text_from_the_study_is_escaped(report):
    html_path, md_path, _ = report
    page, md = html_path.read_text(), md_path.read_text()
    assert EVIL not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt; &amp; a | pipe" in page
    assert "<script" not in md and "<b>" not in md
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt; &amp; a \\| pipe" in md
    # a config holding a code fence cannot close the Markdown fence around it
    assert "````json" in md


def test_missing_data_degrades_to_no_data_lines(tmp_path):
    full = _inputs(tmp_path)
    out = tmp_path / "out"
    write_report(out, *full, sections=KIND_SECTIONS)
    assert len(list((out / "figures").iterdir())) > 3
    html_path, md_path = write_report(out, full[0][:1], study_meta={}, sections=KIND_SECTIONS)
    page, md = html_path.read_text(), md_path.read_text()
    assert "H1" in page and "H1" in md
    pngs = sorted(p.name for p in (out / "figures").iterdir())
    assert pngs == ["findings.png"]  # the earlier report's figures are gone
    for title in ("Return conditioning", "Event rates by process", "Swept knobs", "Goal misgeneralisation",
                  "Inside the network", "Fine-tuning", "Rollouts", "Measurements"):  # fmt: skip
        assert title in page and title in md
    assert page.count('class="nodata"') == 8 and md.count("_No data") == 8
    assert 'no series named "return_sweep"' in md
    html_path, md_path = write_report(tmp_path / "empty")
    assert "No findings." in html_path.read_text() and "_No findings._" in md_path.read_text()
    assert [t for t, _ in _tags(html_path.read_text()) if t == "img"] == []


def test_store_shaped_inputs(tmp_path):
    """Findings as objects (with `means`, `essay`, `expect`, `note`), rows naming the metric
    `metric`, and rollout paths relative to the run directory, as `simulacra.studies` keeps them."""

    @dataclasses.dataclass(frozen=True)
    class Finding:
        id: str
        claim: str
        essay: str
        seed: str
        metric: str
        groups: str
        expect: str
        effect: float
        ci_low: float
        ci_high: float
        n_seeds: int
        verdict: str
        means: dict
        note: str = ""

    out = tmp_path / "runs" / "study"
    rollout_gif(_frames(3), out / "units" / "u1" / "rollout.gif")
    finding = Finding("H1", "RL is instrumental", "Simulators §3", "prediction differs from RL", "rate_button",
                      "ppo − dt", "> 0", 0.25, 0.1, 0.4, 2, "supported", {"ppo": 0.5, "dt": 0.25}, "CI by percentile")  # fmt: skip
    rows = [{"unit_id": f"u{s}{p}", "process": p, "kind": "agent", "world": "offswitch", "seed": s, "sweep": {},
             "metric": "rate_button", "value": v + 0.01 * s} for s in range(2) for p, v in (("ppo", 0.5), ("dt", 0.25))]  # fmt: skip
    files = [{"unit_id": "u1", "process": "ppo", "name": "rollout", "path": "units/u1/rollout.gif"}]
    html_path, md_path = write_report(out, [finding], rows, [], files, {"name": "s"}, sections=[event_rates])
    page, md = html_path.read_text(), md_path.read_text()
    for text in ("prediction differs from RL (Simulators §3)", "ppo − dt (expected: &gt; 0)", "ppo: 0.5 · dt: 0.25",
                 "CI by percentile", "0.25 [0.1, 0.4]"):  # fmt: skip
        assert text in page and text in md, text
    assert (out / "figures" / "event_rates.png").is_file() and "data:image/gif;base64," in page
    assert "missing file" not in page


def test_findings_show_holm_verdicts_not_run_the_method_and_seeds_needed():
    """Findings from the study layer: the Holm column, "not run" in its own colour, the line naming
    the intervals' methods and the Holm family, and the seeds an inconclusive effect needs."""
    from simulacra.studies import Hypothesis
    from simulacra.studies.stats import adjust, finding

    def hyp(hid, a, b, expect="greater"):
        return Hypothesis.model_validate({"id": hid, "claim": "c", "seed": {"essay": "e", "sentence": "s"}, "metric": "m",
                                          "compare": {"a": a, "b": b}, "expect": expect})  # fmt: skip

    d = [0.3, -0.2, 0.5, 0.1]
    rows = [{"process": p, "seed": s, "sweep": {}, "metric": "m", "value": v}
            for s in range(4) for p, v in (("ppo", 1.0 + 0.1 * s), ("dt", 0.1 * s), ("bc", 0.1 * s + d[s]))]  # fmt: skip
    rows += [{"process": "cloned", "seed": s, "sweep": {}, "metric": "m", "value": 0.05 * s} for s in range(6)]
    found = adjust([finding(h, rows) for h in (hyp("H1", "ppo", "dt"), hyp("H2", "bc", "dt"), hyp("H3", "ppo", "cloned"),
                                                hyp("H4", "sim", "ghost"))])  # fmt: skip
    assert [f.verdict for f in found] == ["inconclusive", "inconclusive", "supported", "not run"]
    # H1's 4 seeds all differ by exactly 1: no interval, the sign test's verdict, and the note says so under the table
    note = "all 4 seeds identical: no spread to make an interval from; the verdict is the sign test's (p = 2^(1−4) = 0.125)"
    assert found[0].note == note
    doc = report_document(found)
    page, md = to_html(doc), to_markdown(doc)
    assert "<th>verdict (Holm)</th>" in page and "| verdict | verdict (Holm) |" in md
    assert page.count('class="verdict v-not-run"') == 2 and ".v-not-run {" in page and "| **not run** | **not run** |" in md
    method = (
        "95% intervals over seeds: Student t on paired seed differences (H1, H2); Welch t (H3). "
        "Holm-adjusted verdicts across the study's 3 run hypotheses (family-wise 5%)."
    )
    assert html.escape(method) in page and method in md
    seeds = f"about {found[1].seeds_needed} seeds would resolve an effect of this size"
    assert found[1].seeds_needed > 4 and f"<li><b>H2</b>: {seeds}</li>" in page and f"- **H2**: {seeds}" in md
    assert "no results stored for its groups" in md
    assert f"<li><b>H1</b>: {html.escape(note)}</li>" in page and f"- **H1**: {note}" in md
    assert F.findings_forest(found).startswith(b"\x89PNG")
    # plain mappings without Holm verdicts or methods: no Holm column, no method line
    plain = report_document([{"id": "H1", "verdict": "supported", "effect": 0.1, "ci_low": 0.0, "ci_high": 0.2}])
    assert "verdict (Holm)" not in to_markdown(plain) and "intervals over seeds" not in to_markdown(plain)


# ---------------------------------------------------------------------------------------------
# one document, two renderers


def _headings(page: str, md: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    return (
        [(int(level), text) for level, text in re.findall(r"<h([1-3])>(.*?)</h\1>", page)],
        [(len(hashes), text) for hashes, text in re.findall(r"^(#{1,3}) (.*)$", md, re.MULTILINE)],
    )


def _image_alts(page: str, md: str) -> tuple[list[str], list[str]]:
    return [a["alt"] for t, a in _tags(page) if t == "img"], re.findall(r"!\[([^\]]*)\]\(figures/", md)


def _knob_alts(md: str) -> list[str]:
    return re.findall(r"!\[([^\]]*)\]\(figures/knob_", md)


def test_one_document_renders_the_same_content_in_html_and_markdown(tmp_path):
    png = F.findings_forest([{"id": "H1", "metric": "m", "effect": 0.1, "ci_low": 0.0, "ci_high": 0.2, "verdict": "supported"}])
    gif = rollout_gif(_frames(3), tmp_path / "r.gif").read_bytes()
    doc = Document(
        "A <title>",
        (
            Text("What the study asks.", "lede"),
            Heading("Part one"),
            Table(
                ("name", "value"),
                (("a|b", "1"), (Cell("x", css="verdict v-supported", stress="bold", detail="more"), "2")),
                numeric=("value",),
            ),
            Figure("fig", "A figure", "Its caption.", png),
            Figure("gone", "Missing figure", "", None, "nothing measured"),
            Heading("Part two", 3),
            Gallery(
                (
                    GalleryItem("u1", "p rollout (u1)", "r.gif", gif),
                    GalleryItem("u2", "p rollout (u2)", "s.gif", None, "missing file s.gif"),
                )
            ),
            Details("configs", (Code('{"note": "```"}', "json"),)),
            Bullets((("started", "today"),), "notes"),
        ),
    )
    page, md = to_html(doc), to_markdown(doc)
    headings_html, headings_md = _headings(page, md)
    assert headings_html == headings_md == [(1, "A &lt;title&gt;"), (2, "Part one"), (3, "Part two")]
    alts_html, alts_md = _image_alts(page, md)
    assert alts_html == alts_md == ["A figure", "p rollout (u1)"]
    assert assets(doc) == {"fig.png": png, "r.gif": gif}
    assert sorted(set(re.findall(r"\]\(figures/([^)]+)\)", md))) == ["fig.png", "r.gif"]
    for text in ("What the study asks.", "Its caption.", "No data for “Missing figure”: nothing measured.", "missing file s.gif", "today"):
        assert text in page and text in md, text
    assert '<td class="num">1</td>' in page and "|---|---:|" in md and "| a\\|b | 1 |" in md
    assert '<td class="verdict v-supported">x<div class="means">more</div></td>' in page and "| **x** (more) | 2 |" in md
    assert "<details><summary>configs</summary>" in page and "````json" in md
    assert not [t for t, _ in _tags(page) if t == "script"] and '<link rel="icon" href="data:,">' in page
    with pytest.raises(ValueError, match="fig.png"):
        assets(Document("t", (Figure("fig", "one", "", png), Figure("fig", "two", "", gif))))


def test_report_files_hold_the_same_sections_in_order(report):
    html_path, md_path, _ = report
    page, md = html_path.read_text(), md_path.read_text()
    headings_html, headings_md = _headings(page, md)
    assert headings_html == headings_md
    assert [t for level, t in headings_html if level == 2] == [
        "Findings",
        "Findings at a glance",
        "Return conditioning",
        "Event rates by process",
        "Goal misgeneralisation",
        "Inside the network",
        "Fine-tuning",
        "Swept knobs",
        "Rollouts",
        "Measurements",
        "Reproduce",
    ]
    alts_html, alts_md = _image_alts(page, md)
    assert alts_html == alts_md and len(alts_md) == 9
    # the knobs the sections claim (coin_random_prob, params.layer) get no generic figure
    assert _knob_alts(md) == ["rate_button, rate_tamper vs reward_delay"]


# ---------------------------------------------------------------------------------------------
# sections


def _knob_inputs():
    """Two processes, each sweeping its own knob, measuring the same metrics."""
    rows = [
        {"unit_id": f"{p}{s}{x}", "process": p, "kind": "agent", "world": "offswitch", "seed": s, "sweep": {knob: x},
         "name": name, "value": base + 0.1 * x + 0.01 * s}
        for p, knob in (("ppo", "world.reward_delay"), ("ppo_g", "params.gamma"))
        for s in range(2) for x in (0, 1) for name, base in (("rate_button", 0.5), ("rate_tamper", 0.1), ("return", 1.0))
    ]  # fmt: skip
    finding = {"id": "H2", "claim": "tampering grows with the delay", "seed": "", "metric": "rate_tamper",
               "groups": "ppo: slope vs world.reward_delay", "knob": "world.reward_delay", "processes": ("ppo",), "effect": 0.1,
               "ci_low": 0.05, "ci_high": 0.15, "n_seeds": 2, "verdict": "supported", "group_means": {}}  # fmt: skip
    return finding, rows


def _knob_titles(findings, rows) -> list[str]:
    doc = report_document(findings, rows)
    return [b.title for b in doc.blocks if isinstance(b, Figure) and b.stem.startswith("knob_")]


def test_knob_figures_follow_the_findings_structured_fields_not_their_text():
    finding, rows = _knob_inputs()
    drawn = _knob_titles([finding], rows)
    assert drawn == ["rate_tamper vs params.gamma", "rate_tamper, return vs world.reward_delay"]
    # rewording the groups changes nothing
    assert _knob_titles([dict(finding, groups="the delayed-feedback arm, by its knob")], rows) == drawn
    assert _knob_titles([dict(finding, groups="ppo_g: slope vs params.gamma")], rows) == drawn
    # the structured knob and processes decide
    moved = dict(finding, knob="params.gamma", processes=("ppo_g",))
    assert _knob_titles([moved], rows) == ["rate_tamper, return vs params.gamma", "rate_tamper vs world.reward_delay"]
    # a finding without them (a plain mapping) only counts in the fallback, whatever its text says
    plain = {k: v for k, v in finding.items() if k not in ("knob", "processes")}
    assert _knob_titles([plain], rows) == ["rate_tamper vs params.gamma", "rate_tamper vs world.reward_delay"]
    # no finding: the event rates
    assert _knob_titles([], rows) == ["rate_button, rate_tamper vs params.gamma", "rate_button, rate_tamper vs world.reward_delay"]


def test_a_trend_finding_from_the_study_layer_carries_its_knob_and_processes():
    from simulacra.studies import Hypothesis
    from simulacra.studies.stats import finding

    finding_, rows = _knob_inputs()
    h = Hypothesis.model_validate(
        {
            "id": "H2",
            "claim": "c",
            "seed": {"essay": "e", "sentence": "s"},
            "metric": "rate_tamper",
            "trend": {"process": "ppo", "knob": "world.reward_delay"},
            "expect": "increasing",
        }
    )
    c = Hypothesis.model_validate(
        {
            "id": "H1",
            "claim": "c",
            "seed": {"essay": "e", "sentence": "s"},
            "metric": "rate_button",
            "compare": {"a": "ppo", "b": "ppo_g"},
            "expect": "greater",
        }
    )
    store_rows = [dict(r, metric=r["name"]) for r in rows]
    trend, compare = finding(h, store_rows), finding(c, store_rows)
    assert (trend.knob, trend.processes) == ("world.reward_delay", ("ppo",))
    assert (compare.knob, compare.processes) == (None, ("ppo", "ppo_g"))
    assert trend.to_dict()["knob"] == "world.reward_delay" and list(compare.to_dict()["processes"]) == ["ppo", "ppo_g"]
    assert _knob_titles([trend], rows) == _knob_titles([finding_], rows)


def test_a_section_provider_defined_anywhere_appears_in_both_files(tmp_path):
    seen: list[ReportInputs] = []

    def tampering(inputs: ReportInputs) -> Section:
        seen.append(inputs)
        png = F.event_rates([r for r in inputs.rows if r["name"] == "rate_tamper"], colours=inputs.colours)
        figures = [
            Figure("tampering", "Tamper rate", "Only <tampering>.", png),
            Figure("nothing", "Unmeasured", "", None, "no such metric"),
        ]
        return Section("Tampering, our way", figures, knobs=("reward_delay",))

    def silent(inputs: ReportInputs) -> None:
        return None

    findings, rows, series, files, meta = _inputs(tmp_path)
    html_path, md_path = write_report(tmp_path / "out", findings, rows, series, files, meta, sections=[silent, tampering])
    page, md = html_path.read_text(), md_path.read_text()
    for text in ("Tampering, our way", "Only &lt;tampering&gt;.", "No data for “Unmeasured”: no such metric."):
        assert text in page and text in md, text
    assert "figures/tampering.png" in md and (md_path.parent / "figures" / "tampering.png").is_file()
    headings = [t for level, t in _headings(page, md)[0] if level == 2]
    assert headings[:4] == ["Findings", "Findings at a glance", "Tampering, our way", "Swept knobs"]
    assert _knob_alts(md) == ["p_old_spot vs coin_random_prob"]  # reward_delay is claimed; params.layer has no finding metric or rate
    (inputs,) = seen
    assert [f["id"] for f in inputs.findings] == ["H1", "H2", "H3", "H6"] and set(inputs.colours) >= {"ppo", "dt", "bc"}
    assert inputs.findings[0]["knob"] is None and inputs.findings[0]["processes"] == ()


def test_a_study_reports_the_sections_of_its_kinds_in_process_order_once(monkeypatch):
    import types

    from simulacra.report.study import section_providers
    from simulacra.studies import PROCESSES

    def a(inputs):
        return None

    def b(inputs):
        return None

    monkeypatch.setitem(PROCESSES, "kind_one", types.SimpleNamespace(sections=(b, a)))
    monkeypatch.setitem(PROCESSES, "kind_two", types.SimpleNamespace(sections=(a,)))
    monkeypatch.setitem(PROCESSES, "kind_bare", types.SimpleNamespace(sections=()))
    study = types.SimpleNamespace(
        processes={n: types.SimpleNamespace(kind=k) for n, k in (("p", "kind_two"), ("q", "kind_bare"), ("r", "kind_one"))}
    )
    assert section_providers(study) == [a, b]


def test_the_report_names_no_study_kind_metric_or_knob():
    from simulacra.report import render

    assert not hasattr(render, "_MISGENERALISATION_KNOB") and not hasattr(render, "_LAYER_KNOB")
    sources = {p.name: p.read_text() for p in Path(render.__file__).parent.glob("*.py")}
    assert set(sources) >= {"__init__.py", "document.py", "figures.py", "render.py", "sections.py", "study.py"}
    for name, text in sources.items():
        assert "coin_random_prob" not in text, name
    # the figure toolkit may default its names; what chooses the sections names none of them
    for name in ("__init__.py", "document.py", "render.py", "sections.py", "study.py"):
        for word in ("return_sweep", "finetune", "p_old_spot", "p_coin", "probe_", "params.layer", '"layer"', "rate_button"):
            assert word not in sources[name], (name, word)


# ---------------------------------------------------------------------------------------------
# headless Chromium


def _chrome():
    """A headless Chromium driven by selenium, or a skip (a failure on CI as root, where
    `make test` installs Debian's chromium and chromium-driver) saying what is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [n for n, ok in (("chromium", browser), ("chromedriver", driver), ("selenium", webdriver)) if not ok]
    if missing:
        reason = f"{', '.join(missing)} not found (Debian: apt-get install -y chromium chromium-driver; selenium: the dev extra)"
        if os.environ.get("CI") and hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.fail(f"{reason}; on CI as root `make test` installs them")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--allow-file-access-from-files"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def chrome():
    d = _chrome()
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _open(driver, path: Path) -> tuple[list[dict], list[dict]]:
    """Load `path`; return (severe console entries, images with their load state)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop entries of an earlier page
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))
    images = driver.execute_script("return Array.from(document.images).map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight}))")
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    return severe, images


def test_browser_check_catches_errors_and_broken_images(chrome, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img alt="broken" src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>')  # fmt: skip
    severe, images = _open(chrome, bad)
    assert any("boom" in e["message"] for e in severe)
    assert images == [{"alt": "broken", "w": 0, "h": 0}]


def test_report_opens_in_headless_chromium(chrome, report):
    html_path, _, _ = report
    severe, images = _open(chrome, html_path)
    assert severe == []
    assert len(images) == 9
    assert all(i["w"] > 0 and i["h"] > 0 for i in images), [i for i in images if not i["w"]]
    assert chrome.title == "Study: flagship"  # the claim's <script> stayed text
