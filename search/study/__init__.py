"""The study and its storage: opening, masking URLs, Optuna's private calls, trial counting, pruners.

Reads and writes a study; imports nothing of the run, export or results sides.
"""
