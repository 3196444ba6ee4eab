"""Batch face indexer for photo collections.

The CLI (``indexer``) is a thin layer over :mod:`indexer.api`; import that to index, inspect
runs and search from Python.
"""

__version__ = "0.1.0"
