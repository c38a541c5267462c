"""Data loaders: DGHS, ToxiGen, MMLU and the Political Compass, from local files or the paper's Hub ids.

Every data set has one *normaliser* that turns a raw table into its loader's columns; the local branch (files
under the data directory, see ``README.md`` of the shared data folder) and the Hub branch
(``datasets.load_dataset`` on the ids in :class:`~unidetox.config.DataConfig`) both feed it, so they return the
same columns and, where the data overlap, the same rows. The Hub branch never passes a token: ``datasets``
reads ``HF_TOKEN`` from the environment itself.

One module per job:

* :mod:`~unidetox.data.files`: ``DataError``, the data directory, checked CSV reading, one Hub split as a table.
* :mod:`~unidetox.data.dghs`: DGHS v0.2.3 (toxic-model corpus).
* :mod:`~unidetox.data.toxigen`: ToxiGen ``annotated`` rows (bytes-literal texts decoded).
* :mod:`~unidetox.data.prompts`: ToxiGen prompts of the four evaluation domains and their splits.
* :mod:`~unidetox.data.mmlu`: MMLU questions.
* :mod:`~unidetox.data.political_compass`: the 62 Political Compass statements.
* :mod:`~unidetox.data.checksums`: SHA-256 of the data files read and of text lists (provenance, stage keys).
"""
