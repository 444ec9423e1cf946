"""What a figure shows a part of, in words with both counts ("50,000 of 1,032,192 wells drawn").

Pure functions of counts: pages read the counts (drawn sample, stage manifests' ``info``, tables)
and pass them here. Each returns None when nothing was left out, so a caption never says
"sample" when everything was used.
"""

from __future__ import annotations

from typing import Any


def of(part: int, whole: int, unit: str) -> str:
    return f"{part:,} of {whole:,} {unit}"


def umap_fit_caption(fitted: int | None, total: int, unit: str) -> str | None:
    """The project stage fits UMAP on a seeded sample and places the other points from their neighbours."""
    if fitted is None or fitted >= total:
        return None
    return f"UMAP fitted on {of(fitted, total, unit)}; the others placed from their nearest fitted {unit}"


def replicate_caption(info: dict[str, Any] | None, n_scored: int | None) -> str | None:
    """Replicate mAP over a seeded sample of perturbations (evaluate manifest's ``replicate_map`` info).

    ``n_scored``: perturbations in the replicate_map table (its ``n_perturbations``). A store whose
    manifest predates the counts says how many were scored and that the total was not recorded."""
    rep = (info or {}).get("replicate_map")
    if isinstance(rep, dict) and "with_replicates" in rep:
        total, queried = int(rep["with_replicates"]), int(rep.get("queried", rep["with_replicates"]))
        if queried >= total:
            return None
        return f"replicate mAP over a seeded sample of {of(queried, total, 'perturbations with replicates')}"
    if (info or {}).get("replicate_map_sample") and n_scored is not None and n_scored >= int(rep_limit(info)):
        return (f"replicate mAP over {n_scored:,} perturbations, a seeded sample "
                "(this store does not record of how many; rerun the evaluate stage)")
    return None


def rep_limit(info: dict[str, Any] | None) -> int:
    """The replicate-mAP query limit named in an older manifest's text ('at most 2000 ...')."""
    text = str((info or {}).get("replicate_map_sample", ""))
    digits = [int(t) for t in text.replace(",", "").split() if t.isdigit()]
    return digits[0] if digits else 2000


def batch_caption(n_used: int | None, n_wells: int) -> str | None:
    """Batch metrics (classifier accuracy, silhouette) run on a stratified sample of wells."""
    if n_used is None or n_used >= n_wells:
        return None
    return f"batch metrics on a stratified sample of {of(n_used, n_wells, 'wells')}"


def part_of(shown: int, total: int, noun: str) -> str:
    """'40 of 240 genes', or 'all 24 compounds' ('1 well') when nothing was left out."""
    plural = noun if noun.endswith("s") else noun + "s"
    if shown >= total:
        return f"1 {noun}" if total == 1 else f"all {total:,} {plural}"
    return of(shown, total, plural)


def with_caption(title: str | None, *captions: str | None) -> str | None:
    """A title with its captions as a smaller second line (the captions that are not None)."""
    lines = [c for c in captions if c]
    if not lines:
        return title
    sub = "<br><sup>" + "<br>".join(lines) + "</sup>"
    return (title or "") + sub
