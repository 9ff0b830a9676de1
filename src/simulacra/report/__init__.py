"""The report: a study's findings, figures, rollouts and reproduction record, as one
self-contained `report.html` and a `report.md` with its figures beside it.

    from simulacra.report import write_report, rollout_gif
    html_path, md_path = write_report("runs/flagship", findings, rows, series, files, study_meta)

The inputs are plain data, so the report depends on nothing but what a study stores:

* `findings` — one per hypothesis, a mapping or an object with the fields `id`, `claim`,
  `seed` (the seed essay's sentence and title), `metric`, `groups` (text naming the compared
  groups), `effect`, `ci_low`, `ci_high` (floats, nan allowed), `n_seeds`, `verdict`
  ("supported" | "refuted" | "inconclusive") and `group_means` ({group: float});
* `rows` — the results store, one mapping per (unit, metric): `unit_id`, `process`, `kind`,
  `world`, `seed`, `sweep` ({knob: value}), `name`, `value`. Event rates are named `rate_*`;
  the goal-misgeneralisation test `p_old_spot` and `p_coin` on units sweeping
  `coin_random_prob`;
* `series` — curves, one mapping per (unit, name): `unit_id`, `process`, `kind`, `seed`,
  `sweep`, `name`, `data`. Drawn: "return_sweep" (`data`: `targets`, `returns`, optional
  `ci_low`, `ci_high`, `corpus_best`) and "finetune" (`data`: per-update lists `return`, `kl`,
  optional `true_return`, `update`);
* `files` — `unit_id`, `process`, `name`, `path`; files named "rollout*" are animated GIFs
  (`rollout_gif`), shown per process;
* `study_meta` — `name`, `description`, `profile`, `command`, `simulacra_version`, `versions`
  ({package: version}), `wall_clock_s`, `configs` ({unit_id: canonical JSON text or a
  JSON-able object}); any other key is listed as it is.

The names `simulacra.studies` uses are read too: a finding's `means`, `essay`, `expect`, `note`
and `caveats`; a row's `metric` for `name`; file paths relative to the run directory.

See docs/report.md.
"""

from simulacra.report.figures import episode_frames, rollout_gif, tile_episodes
from simulacra.report.render import write_report

__all__ = ["episode_frames", "rollout_gif", "tile_episodes", "write_report"]
