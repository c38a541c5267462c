"""UniDetox companion: detoxify language models by fine-tuning on text distilled by contrastive decoding.

The package is a folder per layer; each layer imports only from the layers listed before it
(``tests/test_layout.py`` checks this):

* core (this folder): ``config`` (typed settings) and ``profile_loader``, ``methods`` (the study's methods),
  ``store``/``lock``/``checkpoint`` (the run store), ``models``/``hub``, ``data/`` (the data sets), ``texts``
  (external text files), ``safe_pickle``, ``errors``;
* ``scale/``: memory and time estimates, hardware, accelerate configurations;
* ``method/``: the paper's method: sampling, the contrastive decoder (``distill``), generation, training, DExperts;
* ``measure/``: log-likelihoods, toxicity scorers, metrics and their bootstrap, evaluation, MMLU, comparisons;
* ``analysis/``: text statistics, text type, the political analysis;
* ``report/``: tables, model and dataset cards, provenance, notebooks and the book;
* ``pipeline/``: the cached, resumable stages and the study over the run store; the user workflows;
* ``cli``: the ``unidetox`` command.
"""
