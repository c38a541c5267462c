"""What readers see: tables, model and dataset cards, provenance, the notebooks' setup, the book."""
