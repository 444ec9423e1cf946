"""Import the EFAAR reference implementation (PyPI ``efaar-benchmarking==1.0``) for comparison tests.

``efaar_benchmarking.efaar`` imports ``from scvi.model import SCVI`` at module level, and scvi-tools
drags in a large dependency tree we do not want. Only the scVI *embedding* function uses it; the
functions compared here (``tvn_on_controls``, ``centerscale_on_controls``,
``known_relationship_benchmark``, ``compute_recall``) do not. So, if scvi is not installed, a
tiny stub module is placed in ``sys.modules`` before the import; calling ``SCVI`` raises.

Install the reference with ``pip install --no-deps efaar-benchmarking==1.0`` (plus ``geomloss``,
which ``benchmarking.py`` imports). Tests ``pytest.importorskip`` this module's ``efaar``.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _install_scvi_stub() -> None:
    if "scvi" in sys.modules or importlib.util.find_spec("scvi") is not None:
        return

    class SCVI:  # noqa: D401 - stub
        """Stub: scVI embedding is not available in this environment."""

        def __init__(self, *args, **kwargs):
            raise RuntimeError("scvi-tools is stubbed out for tests; scVI embedding is unavailable")

        @staticmethod
        def setup_anndata(*args, **kwargs):
            raise RuntimeError("scvi-tools is stubbed out for tests; scVI embedding is unavailable")

    scvi = types.ModuleType("scvi")
    scvi_model = types.ModuleType("scvi.model")
    scvi_model.SCVI = SCVI
    scvi.model = scvi_model
    sys.modules["scvi"] = scvi
    sys.modules["scvi.model"] = scvi_model


def load():
    """Return (efaar, benchmarking) modules of efaar_benchmarking 1.0, or raise ImportError."""
    _install_scvi_stub()
    from efaar_benchmarking import benchmarking, efaar

    return efaar, benchmarking
