"""The run store's family: the stage registry (``registry``: every stage declared once), stage directories, keys,
atomic writes and integrity (``run_store``), JSON Lines streams (``jsonl``), the store's lock (``lock``), hard links
of identical files (``links``) and training checkpoints (``checkpoint``).
"""
