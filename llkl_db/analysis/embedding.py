"""Two-dimensional embeddings of a double-centred K x N matrix: PCA (classical MDS on the
squared distances, which are proportional to KL) and t-SNE: openTSNE when installed (the plot
extra), else an exact t-SNE in pure numpy."""

from __future__ import annotations

import numpy as np


def gram(centered: np.ndarray) -> np.ndarray:
    """The K x K Gram matrix of the rows, float64."""
    x = np.asarray(centered, dtype=np.float64)
    return x @ x.T


def sq_distances(g: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows from their Gram matrix (>= 0, zero diagonal)."""
    d = np.diag(g)
    out = d[:, None] + d[None, :] - 2.0 * g
    np.maximum(out, 0.0, out=out)
    np.fill_diagonal(out, 0.0)
    return out


def pca(centered: np.ndarray, dims: int = 2) -> np.ndarray:
    """The rows projected on their ``dims`` leading principal axes (columns already centred),
    from the eigenvectors of the Gram matrix; signs fixed so the largest |coordinate| is positive."""
    x = np.asarray(centered, dtype=np.float64)
    k = x.shape[0]
    if k == 1:
        return np.zeros((1, dims))
    if k > x.shape[1]:
        # More rows than columns: a thin SVD of the matrix, never the K x K Gram matrix.
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        coords = u[:, :dims] * s[:dims]
    else:
        vals, vecs = np.linalg.eigh(gram(x))
        order = np.argsort(vals)[::-1][:dims]
        coords = vecs[:, order] * np.sqrt(np.maximum(vals[order], 0.0))
    for j in range(coords.shape[1]):
        if coords[np.argmax(np.abs(coords[:, j])), j] < 0:
            coords[:, j] *= -1
    if coords.shape[1] < dims:
        coords = np.hstack([coords, np.zeros((k, dims - coords.shape[1]))])
    return coords


def _conditional_p(d2: np.ndarray, perplexity: float, tol: float = 1e-5, iters: int = 64) -> np.ndarray:
    """Row-wise Gaussian affinities with the entropy of each row set to log(perplexity)."""
    k = d2.shape[0]
    target = np.log(perplexity)
    p = np.zeros((k, k))
    for i in range(k):
        di = np.delete(d2[i], i)
        di = di - di.min()
        lo, hi, beta = 0.0, np.inf, 1.0 / max(np.median(di), 1e-12)
        for _ in range(iters):
            w = np.exp(-di * beta)
            s = w.sum()
            h = np.log(s) + beta * float(di @ w) / s
            if abs(h - target) < tol:
                break
            if h > target:
                lo = beta
                beta = beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi = beta
                beta = (beta + lo) / 2
        p[i, np.arange(k) != i] = w / s
    return p


def tsne(
    d2: np.ndarray, perplexity: float = 30.0, iterations: int = 750, seed: int = 0, init: np.ndarray | None = None
) -> np.ndarray:
    """Exact t-SNE (van der Maaten and Hinton 2008) of a K x K matrix of squared distances:
    early exaggeration, momentum and gains as in the reference implementation. O(K^2) per
    iteration, fine for K up to a few thousand."""
    d2 = np.asarray(d2, dtype=np.float64)
    k = d2.shape[0]
    if k < 3:
        return np.column_stack([np.arange(k, dtype=np.float64), np.zeros(k)])
    perplexity = min(perplexity, (k - 1) / 3.0)
    p = _conditional_p(d2 / max(np.median(d2[d2 > 0]) if (d2 > 0).any() else 1.0, 1e-12), perplexity)
    p = (p + p.T) / (2.0 * k)
    np.maximum(p, 1e-12, out=p)
    rng = np.random.default_rng(seed)
    if init is None:
        y = rng.standard_normal((k, 2)) * 1e-4
    else:
        y = np.asarray(init, dtype=np.float64)
        y = (y - y.mean(axis=0)) / max(y[:, 0].std(), 1e-12) * 1e-4
    velocity = np.zeros_like(y)
    gains = np.ones_like(y)
    lr = max(k / 12.0, 50.0)
    p_exaggerated = p * 12.0  # early exaggeration for the first 250 iterations
    num = np.empty((k, k))
    w = np.empty((k, k))
    for it in range(iterations):
        sq = np.einsum("ij,ij->i", y, y)
        np.matmul(y, y.T, out=num)
        num *= -2.0
        num += sq[:, None]
        num += sq[None, :]
        num += 1.0
        np.reciprocal(num, out=num)
        np.fill_diagonal(num, 0.0)
        total = num.sum()
        # w = (P - Q) * num, with Q = max(num / total, 1e-12)
        np.divide(num, total, out=w)
        np.maximum(w, 1e-12, out=w)
        np.subtract(p if it >= 250 else p_exaggerated, w, out=w)
        w *= num
        grad = 4.0 * (w.sum(axis=1)[:, None] * y - w @ y)
        momentum = 0.5 if it < 250 else 0.8
        same = np.sign(grad) == np.sign(velocity)
        gains = np.where(same, gains * 0.8, gains + 0.2)
        np.maximum(gains, 0.01, out=gains)
        velocity = momentum * velocity - lr * gains * grad
        y += velocity
        y -= y.mean(axis=0)
    return y


def tsne_auto(centered: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> tuple[np.ndarray, str]:
    """t-SNE of the rows of a double-centred matrix, PCA-initialised: openTSNE when it is
    installed (fast: nearest neighbours and Barnes-Hut/FFT gradients), else the exact numpy
    :func:`tsne`. Returns the coordinates and a note saying which ran."""
    x = np.asarray(centered, dtype=np.float64)
    k = x.shape[0]
    init = pca(x)
    try:
        import openTSNE
    except ImportError:
        y = tsne(sq_distances(gram(x)), perplexity=perplexity, seed=seed, init=init)
        return y, "t-SNE: exact numpy fallback (for a faster one: pip install openTSNE, in the plot extra)"
    if k < 4:
        return tsne(sq_distances(gram(x)), perplexity=perplexity, seed=seed, init=init), "t-SNE: exact numpy (K < 4)"
    features = pca(x, dims=min(50, k - 1, x.shape[1]))  # the usual PCA-50 before the neighbour search
    start = openTSNE.initialization.rescale(init[:, :2].copy())
    embedding = openTSNE.TSNE(
        perplexity=min(perplexity, (k - 1) / 3.0),
        initialization=start,
        random_state=seed,
        n_jobs=1,
        neighbors="exact" if k < 1000 else "auto",
        verbose=False,
    ).fit(features)
    return np.asarray(embedding, dtype=np.float64), f"t-SNE: openTSNE {getattr(openTSNE, '__version__', '')}".strip()
