"""The SSPS training recipe (needs the ``[train]`` extra: torch).

Run ``python -m ssps.train --config CONFIG.yaml``. Everything that imports torch lives
under this package, so ``import ssps`` stays torch-free.
"""
