"""Rank/alpha sweeps: a W&B sweep file run on W&B or locally, and the summary report."""
