"""Only what pyproject.toml cannot say (everything else is there): packages found automatically
*and* two data folders mapped into the phenomix package.

assets/ (the dashboard's stylesheets) and models/mae_tiny_demo (the MAE the pipeline embeds with
by default) stay at the checkout's top level, where `make demo`, the app and the pipeline read
them; an installed package carries them as phenomix/assets and phenomix/models, and
phenomix.settings.shipped_dir finds whichever exists.
"""

from setuptools import find_packages, setup

SHIPPED = {"phenomix.assets": "assets", "phenomix.models": "models"}

setup(
    packages=[*find_packages(include=["phenomix", "phenomix.*", "precompute", "precompute.*",
                                      "phenomix_dash", "phenomix_dash.*"]), *SHIPPED],
    package_dir=SHIPPED,
    package_data={"phenomix.assets": ["*.css", "*.js"], "phenomix.models": ["README.md", "mae_tiny_demo/*"]},
    include_package_data=False,
)
