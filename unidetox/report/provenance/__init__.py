"""Provenance: the facts about what produced a result (``facts``) and the book's pages built from them
(``pages``).
"""
