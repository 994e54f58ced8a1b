"""Datasets: the registry of sources, reading, the decoded-image cache, batches, download and verification."""
