"""Compare two artifact stores file by file: same stage directories (same keys), same bytes.

    python scripts/store_checksums.py STORE_A STORE_B      # exit 1 and list the differences
    python scripts/store_checksums.py STORE                 # print {stage-key/file: sha256}

A refactoring that changes no computation must leave a store byte-identical: every stage key
(which hashes the stage's config, inputs and code version) and every file's sha256 the same.
Manifests are compared on the fields that describe content (config, inputs, key, checksums,
dtypes, rows), not on when or how long a stage ran.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

CONTENT_FIELDS = ("checksums", "code_version", "config", "dtypes", "inputs", "key", "rows")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_checksums(root: Path) -> dict[str, str]:
    """{'<stage>-<key>/<file>': sha256} for every stage file, plus each manifest's content fields."""
    out: dict[str, str] = {}
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir() and "-" in p.name and not p.name.startswith(".")):
        for f in sorted(stage_dir.rglob("*")):
            if not f.is_file():
                continue
            rel = f"{stage_dir.name}/{f.relative_to(stage_dir)}"
            if f.name == "manifest.json":
                m = json.loads(f.read_text())
                out[rel] = json.dumps({k: m.get(k) for k in CONTENT_FIELDS}, sort_keys=True)
            else:
                out[rel] = _sha256(f)
    return out


def main(argv: list[str]) -> int:
    if len(argv) == 1:
        print(json.dumps(store_checksums(Path(argv[0])), indent=1))
        return 0
    a, b = (store_checksums(Path(p)) for p in argv[:2])
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    for k in only_a:
        print(f"only in {argv[0]}: {k}")
    for k in only_b:
        print(f"only in {argv[1]}: {k}")
    for k in changed:
        print(f"differs: {k}")
    print(f"{len(a)} vs {len(b)} files; {len(only_a)} only in the first, {len(only_b)} only in the second, "
          f"{len(changed)} differ")
    return 1 if (only_a or only_b or changed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
