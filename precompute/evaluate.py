"""Evaluate: benchmarks of a phenomics map (one import point for the pipeline and the dashboard).

- relationship_recall, compound_gene_benchmark  (precompute.evaluate_recall)
- phenotypic_activity, replicate_retrieval_map  (precompute.evaluate_map; copairs mAP)
- batch_metrics                                 (precompute.evaluate_batch)
"""

from precompute.evaluate_batch import batch_metrics
from precompute.evaluate_map import phenotypic_activity, replicate_retrieval_map
from precompute.evaluate_recall import compound_gene_benchmark, relationship_recall

__all__ = [
    "batch_metrics",
    "compound_gene_benchmark",
    "phenotypic_activity",
    "relationship_recall",
    "replicate_retrieval_map",
]
