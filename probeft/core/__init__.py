"""Foundations every stage uses: atomic files and the cache root, hashes of the data files a cell read,
devices, task / head / pooling names, the masked mean, metrics, out-of-memory retries, transformers'
load reports, hub access, and the paper's own numbers.

May import: nothing of probeft.
"""
