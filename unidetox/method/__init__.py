"""The paper's method: sampling, the contrastive decoder (distill.py), generation, fine-tuning, DExperts."""
