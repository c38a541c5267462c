"""Peak resident memory and wall time per stage of a finished run store: what a machine needs to build the book.

    PYTHONPATH=. .venv/bin/python benchmarks/stage_memory.py [--profile cpu] [--set runs_dir=runs] [--markdown]

Every stage run records, in its ``DONE`` summary, its wall seconds and the peak resident memory of the process
while it ran (``peak_rss_mb``: /proc/self/statm sampled every 0.2 s, :func:`unidetox.processes.timed`).
This prints, per stage type, the runs, total and longest seconds and the largest peak, largest first, and the
overall peak: the memory a user needs for ``make book`` of this profile (plus the notebooks' kernel, which the
reproducibility page's "book" row measures with ``/usr/bin/time -v``). Stages recorded before the summaries had
a peak show nan.
"""

from __future__ import annotations

import argparse

from unidetox.config.loader import load_profile
from unidetox.pipeline import stage_summaries
from unidetox.report.provenance.pages import stage_time_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="profile name or YAML file (default: cpu)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    profile = load_profile(args.profile, args.overrides)
    table = stage_time_table(stage_summaries(profile)).sort_values("peak_rss_mb_max", ascending=False)
    table["peak_rss_gib_max"] = (table.pop("peak_rss_mb_max") / 1024).round(2)
    table["seconds_total"] = table["seconds_total"].round(1)
    table["seconds_max"] = table["seconds_max"].round(1)
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))
    print(f"\npeak resident memory of any stage: {table['peak_rss_gib_max'].max():.2f} GiB "
          f"({profile.runs_dir}/{profile.name}, {int(table['runs'].sum())} stage runs)")  # fmt: skip


if __name__ == "__main__":
    main()
