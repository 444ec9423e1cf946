"""Import the EFAAR reference implementation (PyPI ``efaar-benchmarking==1.0``) for comparison tests.

``efaar_benchmarking.efaar`` imports ``from scvi.model import SCVI`` at module level, and scvi-tools
drags in a large dependency tree we do not want. Only the scVI *embedding* function uses it; the
functions compared here (``tvn_on_controls``, ``centerscale_on_controls``, ``embed_by_pca``,
``known_relationship_benchmark``, ``compute_recall``) do not. So, if scvi is not installed, a
tiny stub module is placed in ``sys.modules`` before the import; calling ``SCVI`` raises.

The Makefile installs the reference (``make test-install``: requirements-reference.txt with
``--no-deps``, geomloss from requirements-test.txt). A missing or different version is an
ImportError naming the fix (tests/reference_pins.py), never a skip.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from reference_pins import import_pinned

EFAAR_VERSION = "1.0"


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


def _import_modules():
    _install_scvi_stub()
    from efaar_benchmarking import benchmarking, efaar

    return efaar, benchmarking


def load():
    """Return (efaar, benchmarking) modules of efaar_benchmarking 1.0, or raise ImportError saying why."""
    return import_pinned(_import_modules, "efaar-benchmarking", EFAAR_VERSION, "the EFAAR reference")
