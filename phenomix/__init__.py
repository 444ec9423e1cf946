"""Phenomix: the installable package's command line (`phenomix ...`) and its settings.

The science lives in `precompute` (which knows nothing of Dash) and the dashboard in
`phenomix_dash`; this package sits at both ends: `phenomix.settings` is the bottom layer every
other package may read, `phenomix.cli` the top layer that drives both.
"""
