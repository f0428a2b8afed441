"""One thin script per DVC stage, run as ``python -m stages.<name>`` from the checkout's root.

As a module, a stage imports the ``jmrn`` package of the checkout it runs in (the current
directory comes first on ``sys.path``), not the one an editable install points at: a queued
``dvc exp run`` runs in a temporary copy of a commit, and must run that commit's code.
"""
