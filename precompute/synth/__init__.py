"""Synthetic Cell Painting screens with known answers: the demo screen and the benchmarks' truth.

A seeded latent model (genes in complexes in pathways, guides, ORFs, compounds with dose response
and toxicity, controls) is laid out on plates with batch, plate and well-position effects, then
either rendered as 5/6-channel images (:func:`generate_screen`) or mapped straight to well
embeddings (:func:`generate_embeddings`, :func:`write_embeddings_screen`). Same config and seed
give byte-identical output on a given machine, whatever the number of workers.

    from precompute.synth import SynthConfig, generate_screen
    generate_screen(SynthConfig.preset("demo"), "screens/demo")

Names: genes ``GENE_0001``, guides ``GENE_0001_g1``, compounds ``CPD_0001``, positive controls
``POSCON_1..``, negative controls ``non-targeting`` (genetic plates) and ``DMSO`` (compound plates).

Ground truth beside the screen (``Screen.ground_truth(name)``, ``ground_truth/{name}.csv``):
  genes             gene, complex, pathway, active, strength, phenotype (top program axes)
  guides            guide, gene, efficiency (0..1; ~12% near 0 = dead guides)
  orfs              gene, active, strength, phenotype
  compounds         compound, targets ('|'-joined), active, ec50_um, hill, toxic_um (NaN: not toxic),
                    efficacy, phenotype
  relationships     entity1, entity2, source - both directions listed, like the real CORUM.txt;
                    synthetic_complex (same complex), synthetic_pathway (same pathway, different
                    complex), synthetic_opposing (genes of two opposing pathways: negative similarity)
  compound_targets  compound, gene, source='synthetic' (every annotated target, active or not)
  latent_programs   kind, entity, concentration_um, one column per PROGRAM_AXES axis
  batch_effects     per plate: stain gain and background per channel, vignette, blur, density,
                    row/column gradients, latent shift per axis
Per-well arrays (``Screen.array``): ``latent_program`` (n, K) what each well's perturbation does;
``nuisance`` (n, 2C+3) its technical parameters; ``well_features`` (embeddings-only screens).
Column names are in ``screen.json`` under ``synthetic.array_columns``.
"""

from precompute.synth.biology import PROGRAM_AXES
from precompute.synth.config import SynthConfig, SynthConfigError
from precompute.synth.embeddings import generate_embeddings, write_embeddings_screen
from precompute.synth.generate import build_model, generate_screen


def __getattr__(name: str):
    # render_site pulls in numba; load it only when asked so embeddings-only use stays light.
    if name == "render_site":
        from precompute.synth.render import render_site

        return render_site
    raise AttributeError(f"module 'precompute.synth' has no attribute {name!r}")


__all__ = [
    "PROGRAM_AXES",
    "SynthConfig",
    "SynthConfigError",
    "build_model",
    "generate_embeddings",
    "generate_screen",
    "render_site",
    "write_embeddings_screen",
]
