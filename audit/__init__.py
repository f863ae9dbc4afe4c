"""Auditing labeled data: label noise (confident learning), leakage between splits, imbalance."""
