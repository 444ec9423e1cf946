"""Evaluation: benchmarks of a phenomics map, one package for the pipeline, benchmarks and tests.

- ``recall``: relationship_recall, compound_gene_benchmark, gene_rows (aggregated gene embeddings)
- ``mean_ap``: phenotypic_activity, replicate_retrieval_map (copairs-style mAP over wells)
- ``batch``: batch_metrics (how much a technical label is still encoded)
- ``blocks``: score_blocks, choose_block (which encoder block of an MAE embeds best)
- ``scorecard``: evaluate_run (the evaluate stage's tables and summary; runner in
  precompute/stages/evaluate.py)

Modules import each other directly, never this package (no cycle through it): recall, mean_ap and
batch import no sibling; blocks and scorecard import those three.
"""

from precompute.evaluation.batch import batch_metrics
from precompute.evaluation.blocks import choose_block, score_blocks
from precompute.evaluation.mean_ap import count_replicate_entities, phenotypic_activity, replicate_retrieval_map
from precompute.evaluation.recall import compound_gene_benchmark, gene_rows, relationship_recall
from precompute.evaluation.scorecard import evaluate_run

__all__ = [
    "batch_metrics",
    "choose_block",
    "compound_gene_benchmark",
    "count_replicate_entities",
    "evaluate_run",
    "gene_rows",
    "phenotypic_activity",
    "relationship_recall",
    "replicate_retrieval_map",
    "score_blocks",
]
