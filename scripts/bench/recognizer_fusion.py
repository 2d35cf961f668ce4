"""Would two or three recognizers together tell the family set's people apart better than
SFace alone? Each face's embeddings from several packs (same detector, so the same
boxes), each normalised, weighted and put end to end: the cosine of two such faces is
the weighted mean of the packs' cosines. Per weighting and set: the shipped default
(evidence linkage, budget 10, the impostor model estimated from the set, as for any
pack rbv has no calibration for), pairwise P / R / F; on the labelled faces' pairs AUC
and the share of one-person pairs above the similarity that lets 1e-3 / 1e-2 of the
different-person pairs through (TAR at that FAR; the ratio: the first weighting's TAR at
1e-3 over this one's, so the first is the baseline); on data/family the same for its
child↔adult pairs of one person and the share of its kin pairs (same family, different
people) let through.

The sets are indexed once per pack by `quality_matrix.py`'s loader into `DIR`:

    uv run python scripts/bench/recognizer_fusion.py \
        --pack scrfd_sface=/tmp/q-sface --pack scrfd_fp512=/tmp/q-fp512 \
        --pack scrfd_mbf128=/tmp/q-mbf128 --weights 1,0,0 0.7,0.3,0 0.6,0.2,0.2
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from quality_matrix import SETS, SHARED, family_and_age, index_sets, pair_kinds
from rbv.cluster.evaluation import Evaluation
from rbv.cluster.evidence import ImpostorModel, random_pair_similarities
from rbv.cluster.metrics import pairwise
from rbv.config import Settings
from rbv.face_rows import FacePlace, PackFaces
from rbv.jobs.grouping.eval import faces_under, label_main_faces, read_labels
from rbv.store import open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.server.migrations import apply_pending

BUDGET = 10.0


def pack_faces(name: str, data: Path
               ) -> tuple[PackFaces, dict[tuple[str, tuple[int, ...]], int], list[FacePlace]]:
    """The pack's faces (indexed first where they are not yet), each face's row by its
    photo and box, and where each face is."""
    settings = Settings(data_dir=data, model_pack=str(SHARED / "models" / name))
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    index_sets(db, settings)
    with db.connect() as conn:
        pack = find_pack(conn, name)
        faces, places = load_faces(conn, pack), faces_with_paths(conn, pack)
    row = {int(f): i for i, f in enumerate(faces.ids.tolist())}
    keys = {(str(Path(p.path).resolve()), tuple(round(v) for v in p.box)): row[p.face_id]
            for p in places}
    return faces, keys, places


def tar(s: np.ndarray, one: np.ndarray, impostors: np.ndarray, far: float) -> float:
    return float(np.mean(s[one] > impostors[int(far * len(impostors))])) if one.any() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", action="append", required=True, metavar="NAME=DIR",
                        help="a pack of ../shared/models and its scratch data directory")
    parser.add_argument("--weights", nargs="+", required=True, metavar="W1,W2,…")
    args = parser.parse_args()
    packs = [pack_faces(n, Path(d)) for n, d in (p.split("=", 1) for p in args.pack)]
    first, first_keys, places = packs[0]
    photo_of = {p.face_id: Path(p.path).resolve() for p in places}
    common = [k for k in first_keys if all(k in keys for _, keys, _ in packs[1:])]
    print(f"faces per pack {[len(f) for f, _, _ in packs]}, in all of them {len(common):,}")
    first_tar: dict[str, float] = {}  # per set: the first weighting's TAR at FAR 1e-3
    for text in args.weights:
        weights = [float(w) for w in text.split(",")]
        for name, folder, labels_csv in SETS:
            inside = faces_under(places, folder)
            keys = sorted((k for k in common if int(first.ids[first_keys[k]]) in inside),
                          key=lambda k: first_keys[k])
            faces = first.take(np.array([first_keys[k] for k in keys], np.int64))
            truth, _ = label_main_faces(faces, [p for p in places if p.face_id in inside],
                                        read_labels(folder, labels_csv))
            parts = []
            for (pf, pkeys, _), w in zip(packs, weights, strict=True):
                e = pf.embeddings[[pkeys[k] for k in keys]].astype(np.float64)
                parts.append(np.sqrt(w) * e / np.linalg.norm(e, axis=1, keepdims=True))
            joined = np.concatenate(parts, axis=1)
            joined /= np.linalg.norm(joined, axis=1, keepdims=True)
            faces = replace(faces, embeddings=joined.astype(np.float32))
            ev = Evaluation(faces, truth)
            model = ImpostorModel.from_library_pairs(
                random_pair_similarities(faces.embeddings, faces.image_ids))
            p = pairwise(ev.labels("evidence", BUDGET, model)[ev.labelled], ev.truth)
            x = faces.embeddings[ev.labelled].astype(np.float64)
            i, j = np.triu_indices(len(ev.truth), 1)
            s = (x @ x.T)[i, j]
            one = ev.truth[i] == ev.truth[j]
            impostors = np.sort(s[~one])[::-1]
            at_1e3 = tar(s, one, impostors, 1e-3)
            base = first_tar.setdefault(name, at_1e3)
            line = (f"{text:<14} {name:<9} P/R/F {p.precision:.3f} / {p.recall:.3f} / "
                    f"{p.f1:.3f}  AUC {roc_auc_score(one, s):.4f}  TAR {at_1e3:.3f} / "
                    f"{tar(s, one, impostors, 1e-2):.3f} (first / this "
                    f"{base / at_1e3 if at_1e3 else float('inf'):.2f})")
            kin = kin_pairs(folder, faces.ids[ev.labelled], photo_of, ev.truth, i, j)
            if kin is not None:
                lag, related = kin
                line += (f"  child↔adult {tar(s, lag, impostors, 1e-3):.3f} / "
                         f"{tar(s, lag, impostors, 1e-2):.3f} ({int(lag.sum())})  kin let "
                         f"through {tar(s, related, impostors, 1e-3):.3f} / "
                         f"{tar(s, related, impostors, 1e-2):.3f} ({int(related.sum())})")
            print(line, flush=True)


def kin_pairs(folder: Path, face_ids: np.ndarray, photo_of: dict[int, Path],
              truth: np.ndarray, i: np.ndarray, j: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray] | None:
    """Child↔adult pairs of one person and kin pairs, from the set's labels.csv (None
    where it has none or it has no such columns)."""
    path = folder / "labels.csv"
    kin = family_and_age(path, [photo_of[int(f)] for f in face_ids]) if path.is_file() else None
    if kin is None:
        return None
    related, lag = pair_kinds(*kin, truth, i, j)
    return lag, related


if __name__ == "__main__":
    main()
