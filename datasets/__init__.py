"""Bundled data sets, installed as the package `territory_datasets` (see optimizer.datasets)."""
