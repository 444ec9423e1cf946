"""Phenomix precompute: turn a Cell Painting screen into the artifacts the dashboard reads.

Knows nothing of Dash. Stages: embed -> align -> aggregate -> relate -> project -> evaluate.
"""

__version__ = "0.1.0"
