"""The book's tables, one module per reader: the main, transfer and grid tables (``main``), per-page reshapes
(``pages``), the scorer-validity page's tables (``validity``), the explore page's table of every report continuation
(``continuations``), ``unidetox score``'s summary (``score``), ``unidetox plan``'s tables (``plan``) and the
settings reference (``settings``).
"""
