"""The report: a study's findings, figures, rollouts and reproduction record, as one
self-contained `report.html` and a `report.md` with its figures beside it.

    from simulacra.kinds.sections import event_rates, return_conditioning
    from simulacra.report import write_report
    html_path, md_path = write_report("runs/flagship", findings, rows, series, files, study_meta,
                                      sections=[event_rates, return_conditioning])

The report is built once as a `Document` — a title and a list of blocks (headings, text,
tables, figures, GIF galleries, details, code) — and rendered twice, by `to_html` and
`to_markdown` (`simulacra.report.document`). It knows no study: besides the findings table, the
forest plot of the findings, the "Swept knobs" figures, the rollouts, the measurements and the
reproduction record, its sections come from section providers, callables
`(ReportInputs) -> Section | None` that the process kinds bring (`simulacra.kinds.sections`;
`simulacra.report.study` gathers those of the kinds a study runs). A section that claims a knob
(`Section.knobs`) draws it itself, and the "Swept knobs" figures skip it.

The inputs are plain data, so the report depends on nothing but what a study stores:

* `findings` — one per hypothesis, a mapping or an object with the fields `id`, `claim`,
  `seed` (the seed essay's sentence and title), `metric`, `groups` (text naming the compared
  groups, shown as it is), `effect`, `ci_low`, `ci_high` (floats, nan allowed), `n_seeds`,
  `verdict` ("supported" | "refuted" | "inconclusive" | "not run"), `group_means`
  ({group: float}); to tie the finding to the knob figures, `knob` (a trend's swept knob) and
  `processes` (the processes its groups name); and, optionally, `verdict_holm` (the verdict
  after Holm's adjustment: a column of its own), `method` (the interval's method, listed under
  the table), `seeds_needed` and `paired` (a line "about N seeds would resolve …");
* `rows` — the results store, one mapping per (unit, metric): `unit_id`, `process`, `kind`,
  `world`, `seed`, `sweep` ({knob: value}), `name`, `value`. Event rates are named `rate_*`;
* `series` — curves, one mapping per (unit, name): `unit_id`, `process`, `kind`, `seed`,
  `sweep`, `name`, `data` (drawn by the sections that know the name);
* `files` — `unit_id`, `process`, `name`, `path`; files named "rollout*" are animated GIFs
  (`simulacra.world.render.rollout_gif`), shown per process;
* `study_meta` — `name`, `description`, `profile`, `command`, `simulacra_version`, `versions`
  ({package: version}), `wall_clock_s`, `configs` ({unit_id: canonical JSON text or a
  JSON-able object}); any other key is listed as it is.

The names `simulacra.studies` uses are read too: a finding's `means`, `essay`, `expect`, `note`
and `caveats`; a row's `metric` for `name`; file paths relative to the run directory.

See docs/report.md.
"""

from simulacra.report.document import Document, Figure, to_html, to_markdown
from simulacra.report.render import write_report
from simulacra.report.sections import ReportInputs, Section, SectionProvider

__all__ = ["Document", "Figure", "ReportInputs", "Section", "SectionProvider", "to_html", "to_markdown", "write_report"]
