"""Analyses and figures built on htaf's theory and estimators.

Modules are imported explicitly (``from htaf.analysis import figures``); this package imports
nothing heavy on its own.
"""
