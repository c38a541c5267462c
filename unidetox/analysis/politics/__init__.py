"""Political-bias analysis: how political are text sets, where do models sit on the Political Compass, and
which words set each text set apart.

The UniDetox paper reports that its distilled detoxifying text contains less politically biased content than
the alternatives. This package measures three things, all offline and deterministic, one module per job:

* :mod:`.text`: word tokens, stopwords and the checks of text inputs (lists of strings, named text sets).
* :mod:`.embedder`: all-MiniLM-L6-v2 sentence embeddings.
* :mod:`.classifiers`: the topic classifiers that label a text political or not (``minilm``, ``keyword``).
* :mod:`.validation`: their accuracy on the shipped labelled texts.
* :mod:`.shares`: **political content share** of each text set, with percentile-bootstrap intervals over
  texts, and the differences between sets.
* :mod:`.compass`: **political leaning of models** on the 62 Political Compass statements.
* :mod:`.distinctive`: **distinctive words** of each text set (weighted log-odds with a Dirichlet prior).
* :mod:`.report`: :func:`~.report.political_report` runs all three and returns the tables the notebook
  ``notebooks/political_bias.py`` shows.

Every module raises :class:`PoliticalError` for inputs it cannot use.
"""

from __future__ import annotations

from unidetox.errors import UnidetoxError


class PoliticalError(UnidetoxError, ValueError):
    """Inputs the political analysis cannot use; the message names the problem and the fix."""


__all__ = ["PoliticalError"]
