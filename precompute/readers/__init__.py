"""Readers: what JUMP, RxRx and the cytomining tools write -> the one screen data contract.

- :mod:`.profiles`  well-level profiles (pycytominer / JUMP / LINCS CSV, CSV.gz, Parquet) -> screen
  with ``well_features`` (embedder ``features``); metadata mapping in :mod:`.mapping`,
  its override config and report in :mod:`.config`.
- :mod:`.rxrx`      RxRx3(-core) metadata + image folder or published embedding table.
- :mod:`.jump_images` Phenix-named 16-bit TIFFs, CellProfiler load_data CSVs, channel maps,
  percentile rescaling, MAE input from a real field.
- :mod:`.annotations` EFAAR relationships, CORUM complexes, compound targets/MOA, potencies.
- :mod:`.anndata_io` .h5ad export from an artifact store and import into a screen; table exports.
- :mod:`.cli`       ``python -m precompute import|export`` glue; the import kinds are the modules
  of :mod:`.kinds` (one file each).

Submodules are imported on first use: ``from precompute.readers import read_profiles`` loads the
profile reader only. The screen format the readers write (``precompute.screen``, its image index
and image files) sits below them and imports none of them. See docs/real-data.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReaderError": "common",
    "shared_data_dir": "common",
    "ProfileMapping": "config",
    "MappingReport": "config",
    "read_profiles": "profiles",
    "combine_profiles": "profiles",
    "write_profile_screen": "profiles",
    "profiles_to_screen": "profiles",
    "read_rxrx_metadata": "rxrx",
    "read_embedding_table": "rxrx",
    "rxrx_embedding_screen": "rxrx",
    "rxrx_image_screen": "rxrx",
    "read_load_data": "jump_images",
    "scan_phenix_folder": "jump_images",
    "rescale_16bit": "jump_images",
    "field_to_mae_input": "jump_images",
    "read_relationships": "annotations",
    "read_corum_clusters": "annotations",
    "annotate_compounds": "annotations",
    "read_compound_gene_potency": "annotations",
    "export_anndata": "anndata_io",
    "import_anndata": "anndata_io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
