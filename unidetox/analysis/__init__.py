"""Analyses of text sets: statistics, text type (English prose, code or markup, other language), politics."""
