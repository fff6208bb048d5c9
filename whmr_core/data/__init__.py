"""Synthetic data, dataset readers and augmentation."""
