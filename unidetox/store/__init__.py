"""The run store's family: stage directories and keys (``run_store``), JSON Lines streams (``jsonl``),
the store's lock (``lock``), hard links of identical files (``links``) and training checkpoints (``checkpoint``).
"""
