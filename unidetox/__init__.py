"""UniDetox companion: detoxify language models by fine-tuning on text distilled by contrastive decoding.

The package is a folder per layer; each layer imports only from the layers listed before it
(``tests/test_layout.py`` checks this):

* core (this folder): ``config/`` (typed settings, their loader, the compared methods), ``store/`` (the stage
  registry, the run store, its lock, JSON Lines, checkpoints), ``models/`` (loading, model folders, LoRA adapters,
  tiny models, Hub errors, precision), ``data/`` (the data sets, external text files), ``processes`` (process roles,
  stage messages, timing), ``safe_pickle``, ``errors``;
* ``scale/``: memory and time estimates, hardware, accelerate configurations;
* ``method/``: the paper's method: sampling, the contrastive decoder (``distill``), generation, training, DExperts;
* ``measure/``: log-likelihoods, toxicity scorers, metrics and their bootstrap, evaluation, MMLU, comparisons;
* ``analysis/``: text statistics, text type, the political analysis;
* ``report/``: tables, model and dataset cards, provenance, notebooks and the book;
* ``pipeline/``: the cached, resumable stages and the study over the run store; the user workflows;
* ``cli``: the ``unidetox`` command.
"""
