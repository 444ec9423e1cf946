"""One module per embedder; each registers an :class:`precompute.embed.registry.EmbedderSpec`.

:func:`precompute.embed.registry.discover` imports every module here (names starting with ``_``
excepted), so a new embedder is one new file: its Embedder class (or a lazy import of a heavy
one), a ``stage_options`` function saying what keys its embed stage, and a ``register(...)`` call.
Keep module-level imports light (numpy, no torch): listing the embedders imports all of them.
"""
