"""Figures (seaborn/matplotlib, Agg backend): one module per stage, e.g. ``plots.analysis``."""
