"""Measurements: log-likelihoods, toxicity scorers, metrics and their bootstrap, evaluation, MMLU, comparisons."""
