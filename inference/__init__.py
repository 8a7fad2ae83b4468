"""Inference: load trained runs, predict clips, vote over models and re-rank with rules."""
