"""Synthetic identity-like face embeddings, the same draw for the cluster benchmarks in
``scripts/`` and the scale guard in the suite (``tests/test_cluster_scale.py``).

Faces are drawn around random identity centres on the unit sphere (centre + isotropic
Gaussian noise, renormalised), so that two faces of one identity have cosine similarity
≈ ``SAME_SIM`` and faces of different identities ≈ 0, as with real recognizers; identity
sizes follow a Zipf-like law, and a share of photos hold two faces of different
identities (same-photo cannot-links)."""

from __future__ import annotations

import numpy as np

from rbv.cluster.constraints import Constraints
from rbv.cluster.evidence import DEFAULT_BUDGET, ImpostorModel
from rbv.cluster.knn import DEFAULT_K, build_knn_graph
from rbv.cluster.methods import Method, cluster_embeddings

SAME_SIM = 0.6


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, identity per face, image per face)."""
    rng = np.random.default_rng(seed)
    sizes, centres = identities(n, dim, rng)
    truth = np.repeat(np.arange(len(sizes)), sizes)[:n]
    x = faces_around(centres, truth, rng)
    perm = rng.permutation(n)
    x, truth = x[perm], truth[perm]
    images = np.arange(n)
    # 10 % of faces share a photo with the next face, when that is another person
    # (two faces of one photo are two people: the cannot-link every method honours).
    pairs = rng.choice(n - 1, size=n // 10, replace=False)
    pairs = pairs[truth[pairs] != truth[pairs + 1]]
    images[pairs + 1] = images[pairs]
    return x, truth, images


def identities(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-sized identities of ``n`` faces in all: each one's face count and its unit
    centre (what ``synthetic`` draws first from its generator)."""
    sizes = np.maximum(1, (rng.zipf(1.6, size=n) * 3).clip(max=2000))
    sizes = sizes[np.cumsum(sizes) <= n]
    sizes = np.r_[sizes, np.ones(n - sizes.sum(), int)].astype(int)
    centres = rng.normal(size=(len(sizes), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return sizes, centres


def faces_around(centres: np.ndarray, who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One unit face per entry of ``who``, around its identity's centre (same-identity
    cosine ≈ ``SAME_SIM``)."""
    dim = centres.shape[1]
    sigma = np.sqrt((1 / SAME_SIM - 1) / dim)
    x = centres[who]
    # Per-face quality varies (blur, pose): some faces sit far from their identity.
    spread = np.exp(rng.normal(0, 0.3, size=(len(who), 1))).astype(np.float32)
    x += rng.normal(size=(len(who), dim)).astype(np.float32) * np.float32(sigma) * spread
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x



def warm_up_clustering(n: int = 5_000, dim: int = 128) -> None:
    """Compile the evidence clustering's numba kernels (cached on disk; a clean checkout
    compiles them in its first evidence run, for about 20 s), so that a timing after
    this is the clustering's own."""
    x, _, images = synthetic(n, dim, seed=1)
    cluster_embeddings(x, Method.evidence, 0.0, Constraints.build(n, image_ids=images),
                       graph=build_knn_graph(x, DEFAULT_K),
                       impostor=ImpostorModel(0.0, 0.09, 0.02), budget=DEFAULT_BUDGET)
