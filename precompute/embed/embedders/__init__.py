"""One module per embedder; each registers an :class:`precompute.embed.registry.EmbedderSpec`.

:func:`precompute.embed.registry.discover` imports every module here (names starting with ``_``
excepted), so a new embedder is ONE new file, e.g. ``channel_means.py``::

    import numpy as np

    from ..registry import EmbedderSpec, register

    class ChannelMeans:                      # the Embedder protocol: name, dim, embed_tiles
        name = "channelmeans"

        def __init__(self, n_channels: int) -> None:
            self.dim = n_channels

        def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:   # (n, C, t, t) in [0, 1] -> (n, dim)
            return tiles.mean(axis=(2, 3), dtype=np.float32)

    def stage_options(screen, config):       # (build options, the config that keys its embed stage)
        return {"n_channels": len(screen.channels)}, {"tile": config.tile}

    SPEC = register(EmbedderSpec(name="channelmeans", label="channel means", build=ChannelMeans,
                                 stage_options=stage_options, order=25, help="mean intensity per channel"))

The command line's ``--embedder`` choices and help, the embed stage, and the figures' and
benchmarks' labels then know it. Keep module-level imports light (numpy, no torch): listing the
embedders imports all of these modules; a heavy embedder imports its model inside ``build`` (see
mae.py). Once artifacts exist, never change what ``stage_options`` returns for an embedder: the key
config names them.
"""
