"""Every report continuation in one interactive table (the explore page): prompt, continuation, target, method,
domain, and its score under each scorer; filterable by target, method and domain, sortable by score.

:func:`continuation_frame` builds the table from the study's report runs (each candidate's evaluate stage and, with
``study.second_scorer``, its re-scored copy); :func:`interactive_html` renders it with itables (DataTables) in
offline mode: the DataTables bundle is embedded in the page, nothing is loaded from a CDN. Filtering is DataTables'
SearchPanes (one pane each for target, method and domain) and its search box; sorting by any column, the table
opening sorted by the first score, most toxic first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unidetox.config.compared_methods import METHODS
from unidetox.report.tables.cells import short_name
from unidetox.store.jsonl import read_jsonl

FILTER_COLUMNS = ("target", "method", "domain")
TEXT_COLUMNS = ("prompt", "continuation")
KEY = ["seed", "prompt_id", "sample"]  # one continuation of one evaluation
#: a pane's search box is its pane's full width plus a 2px margin each side (it overflowed the page); headers and
#: the label columns keep their words whole (the book's theme breaks words anywhere in a table), while a long token
#: in a prompt or continuation may still break, so that no text widens the table past the page
CSS = (
    "div.dt-container div.dtsp-searchPane input.dtsp-search.dtsp-paneInputButton { margin: 2px 0 0; }\n"
    "table#continuations th, table#continuations td.whole-words { word-break: normal; overflow-wrap: normal; }"
)


def method_label(labels: dict) -> str:
    """A candidate's method in words, as the main table names it; the other configuration of a method that has
    two (UniDetox with each target's own best, 'oracle'; DExperts with the shared strength, 'transferred') says so."""
    method, selection = labels["method"], labels.get("selection") or ""
    if method not in METHODS:
        return method
    main = METHODS[method].main_selection
    return f"{METHODS[method].label} ({selection})" if selection and selection != main else METHODS[method].label


def score_column(scorer: str) -> str:
    return f"score ({scorer})"


def continuation_frame(
    runs: list[tuple[dict, Path, Path | None]], scorer: str, second_scorer: str = ""
) -> pd.DataFrame:
    """One row per continuation of every report candidate: target, method, domain, prompt, continuation, seed and
    one score column per scorer (``score (<spec>)``), rounded to 3 decimals.

    runs: ``(candidate labels, evaluate stage folder, re-scored stage folder or None)`` (``Study.report_runs``).
    """
    frames = []
    for labels, evaluated, rescored in runs:
        gens = pd.DataFrame(read_jsonl(Path(evaluated) / "generations.jsonl"))
        gens = gens.rename(columns={"toxicity": score_column(scorer)})
        if second_scorer and rescored is not None:
            other = pd.DataFrame(read_jsonl(Path(rescored) / "generations.jsonl"))
            other = other[[*KEY, "toxicity"]].rename(columns={"toxicity": score_column(second_scorer)})
            gens = gens.merge(other, on=KEY, how="left", validate="one_to_one")
        frames.append(gens.assign(target=short_name(labels["target"]), method=method_label(labels)))
    scores = [score_column(scorer)] + ([score_column(second_scorer)] if second_scorer else [])
    columns = [*FILTER_COLUMNS, *TEXT_COLUMNS, "seed", *scores]
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True).sort_values(["target", "method", "prompt_id", "seed", "sample"])
    table[scores] = table[scores].astype(float).round(3)
    return table[columns].reset_index(drop=True)


def table_options(frame: pd.DataFrame) -> dict:
    """itables options: every row (no downsampling), panes for target/method/domain, sorted by the first score
    (descending), long texts wrapped so that the table fits the page, 10 rows a page."""
    col = {c: i for i, c in enumerate(frame.columns)}
    scores = [i for c, i in col.items() if c.startswith("score")]
    return {
        "connected": False,  # offline: the DataTables bundle is embedded, no CDN
        "maxBytes": 0,
        "showIndex": False,
        "classes": "display compact",  # not 'nowrap': prompts and continuations wrap
        "style": "table-layout:auto;width:100%;margin:auto;caption-side:bottom",
        "css": CSS,
        "layout": {
            "top1": "searchPanes",
            "topStart": "pageLength",
            "topEnd": "search",
            "bottomStart": "info",
            "bottomEnd": "paging",
        },
        "searchPanes": {
            "columns": [col[c] for c in FILTER_COLUMNS],
            "layout": "columns-3",
            "cascadePanes": True,
            "initCollapsed": False,
            "dtOpts": {"paging": True, "pagingType": "numbers"},
        },
        "columnDefs": [
            {"searchPanes": {"show": False}, "targets": [i for c, i in col.items() if c not in FILTER_COLUMNS]},
            {"width": "27%", "targets": [col[c] for c in TEXT_COLUMNS]},
            {"className": "dt-nowrap whole-words", "targets": [col["target"], col["domain"], col["seed"]]},
            {"className": "whole-words", "targets": [col["method"]]},
            {"className": "dt-right", "targets": scores},
        ],
        "order": [[scores[0], "desc"]] if scores else [],
        "autoWidth": False,  # the widths below, not widths measured from the first rows
        "pageLength": 10,
        "lengthMenu": [10, 25, 100],
    }


def interactive_html(frame: pd.DataFrame, caption: str | None = None) -> str:
    """The table as HTML for a notebook output: the embedded DataTables bundle (offline mode), then the table."""
    from itables import options, to_html_datatable
    from itables.javascript import generate_init_offline_itables_html

    bundle = generate_init_offline_itables_html(options.dt_bundle)
    return bundle + to_html_datatable(frame, caption=caption, table_id="continuations", **table_options(frame))


__all__ = ["continuation_frame", "interactive_html", "method_label", "score_column", "table_options"]
