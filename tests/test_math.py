"""The math layer: the KL estimator against exact KL, and the invariants of the fast paths."""

from __future__ import annotations

import numpy as np
import pytest

from llkl_db import math as llmath
from llkl_db.math import centering

# ---------------------------------------------------------------------------------------------
# A family with KL in closed form: Markov chains on a small alphabet.
#
# Texts x_1..x_T (T random, independent of the model) are drawn from a reference chain P.
# Model i is a chain with the same start distribution and transition matrix Q_i, a small
# perturbation of P, so l_i(x) = log pi0(x_1) + sum_t log Q_i(x_t, x_{t+1}) exactly.
# KL between the sequence distributions of two chains is a sum over positions of the per-step
# KL of their transition rows, weighted by the state marginals of the first chain.
# ---------------------------------------------------------------------------------------------

A = 4  # alphabet size
LENGTHS = np.arange(24, 73)  # text lengths, uniform; one byte per symbol


def _chain(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = rng.dirichlet(np.full(A, 2.0), size=A)
    return np.full(A, 1.0 / A), p


def _perturb(p: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    q = p * np.exp(eps * rng.standard_normal(p.shape))
    return q / q.sum(axis=1, keepdims=True)


def _sample_counts(pi0: np.ndarray, p: np.ndarray, n: int, rng: np.random.Generator):
    """Draw n texts; return their first symbols and A x A transition counts (n x A*A)."""
    lengths = rng.choice(LENGTHS, size=n)
    state = rng.choice(A, size=n, p=pi0)
    first = state.copy()
    cum = np.cumsum(p, axis=1)
    offsets = np.arange(n) * (A * A)
    cells = []
    for t in range(1, LENGTHS.max()):
        u = rng.random(n)
        nxt = np.minimum((u[:, None] > cum[state]).sum(axis=1), A - 1)
        alive = t < lengths
        cells.append((offsets + state * A + nxt)[alive])
        state = np.where(alive, nxt, state)
    counts = np.bincount(np.concatenate(cells), minlength=n * A * A)
    return first, counts.reshape(n, A * A).astype(np.float64)


def _loglik(first: np.ndarray, counts: np.ndarray, pi0: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.log(pi0)[first] + counts @ np.log(q).ravel()


def _exact_kl(pi0: np.ndarray, qa: np.ndarray, qb: np.ndarray) -> float:
    """KL(chain a || chain b) over texts of a random length in LENGTHS (same start distribution)."""
    row_kl = (qa * np.log(qa / qb)).sum(axis=1)
    marginal = pi0.copy()
    per_length = {}
    total = 0.0
    for t in range(1, LENGTHS.max() + 1):
        per_length[t] = total
        total += marginal @ row_kl  # the step from position t to t+1
        marginal = marginal @ qa
    return float(np.mean([per_length[t] for t in LENGTHS]))


def _exact_variance(pi0: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
    """Var over texts from chain p of sum_t d(x_t, x_{t+1}) (the population value of the estimator)."""
    m0, m1, m2 = pi0.copy(), np.zeros(A), np.zeros(A)
    first, second = [], []
    for _ in range(1, LENGTHS.max() + 1):
        first.append(m1.sum())
        second.append(m2.sum())
        m0, m1, m2 = (
            m0 @ p,
            (m1[:, None] * p + m0[:, None] * p * d).sum(axis=0),
            (m2[:, None] * p + 2 * m1[:, None] * p * d + m0[:, None] * p * d * d).sum(axis=0),
        )
    idx = LENGTHS - 1
    mean = np.mean(np.array(first)[idx])
    return float(np.mean(np.array(second)[idx]) - mean**2)


@pytest.fixture(scope="module")
def markov_family():
    rng = np.random.default_rng(20250516)
    pi0, p = _chain(rng)
    models = [p] + [_perturb(p, 0.04, rng) for _ in range(4)]
    return pi0, p, models


def test_estimator_matches_exact_kl_on_markov_chains(markov_family):
    """Var_s(l_i - l_j) / 2 estimates KL in the second-order regime, within 4 standard errors.

    The estimator is symmetric: to second order it equals KL(p_i||p_j) = KL(p_j||p_i), and in
    general it approximates the Jeffreys-type mean (KL(p_i||p_j) + KL(p_j||p_i)) / 2, which is
    what we compare with. The perturbations are small (eps = 0.04 on log transition
    probabilities), so the third-order gap between the population variance and the exact
    Jeffreys mean is below one standard error; that is checked too, with the exact population
    variance of the chain.
    """
    pi0, p, models = markov_family
    rng = np.random.default_rng(1)
    n = 8_000
    first, counts = _sample_counts(pi0, p, n, rng)
    loglik = np.stack([_loglik(first, counts, pi0, q) for q in models]).astype(np.float32)
    mean_bytes = float(LENGTHS.mean())
    checked = 0
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            est = llmath.pair_kl(loglik[i], loglik[j], mean_bytes)
            jeffreys = 0.5 * (_exact_kl(pi0, models[i], models[j]) + _exact_kl(pi0, models[j], models[i]))
            population = 0.5 * _exact_variance(pi0, p, np.log(models[i] / models[j]))
            assert abs(population - jeffreys) < est.se_nats, (i, j, population, jeffreys, est.se_nats)
            assert abs(est.kl_nats - jeffreys) < 4 * est.se_nats, (i, j, est.kl_nats, jeffreys, est.se_nats)
            assert est.se_nats < 0.05 * jeffreys  # the test has power: SE well below the value
            assert est.kl_bpb == pytest.approx(est.kl_nats / (mean_bytes * np.log(2)))
            assert est.se_bpb == pytest.approx(est.se_nats / (mean_bytes * np.log(2)))
            checked += 1
    assert checked == 10


def test_standard_error_matches_spread_across_replications(markov_family):
    """Across independent text samples, the spread of the estimate matches its reported SE (20%)."""
    pi0, p, models = markov_family
    rng = np.random.default_rng(2)
    replications, n = 300, 1_000
    first, counts = _sample_counts(pi0, p, replications * n, rng)
    a = _loglik(first, counts, pi0, models[1]).reshape(replications, n)
    b = _loglik(first, counts, pi0, models[2]).reshape(replications, n)
    var, se = llmath.variance_with_se(a - b)
    spread = var.std(ddof=1)
    assert spread == pytest.approx(se.mean(), rel=0.2)
    # and the estimates centre on the exact population value (no bias beyond 1/N)
    exact = _exact_variance(pi0, p, np.log(models[1] / models[2]))
    assert abs(var.mean() - exact) < 4 * spread / np.sqrt(replications)


def test_variance_with_se_basic_values():
    d = np.array([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    var, se = llmath.variance_with_se(d)
    np.testing.assert_allclose(var, [1.0, 0.0])
    np.testing.assert_allclose(se, [0.0, 0.0])  # constant |d|: m4 = m2^2
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000)
    var, se = llmath.variance_with_se(x)
    assert var == pytest.approx(x.var())
    centred = x - x.mean()
    assert se == pytest.approx(np.sqrt(((centred**4).mean() - x.var() ** 2) / x.size))


# ---------------------------------------------------------------------------------------------
# Invariants and fast paths against brute force.
# ---------------------------------------------------------------------------------------------


def _loglik_matrix(k: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    difficulty = -300.0 + 60.0 * rng.standard_normal(n)
    return (difficulty + 20.0 * rng.standard_normal((k, 1)) + 8.0 * rng.standard_normal((k, n))).astype(np.float32)


def _brute_variance(clipped: np.ndarray) -> np.ndarray:
    x = clipped.astype(np.float64)
    diff = x[:, None, :] - x[None, :, :]
    return diff.var(axis=-1)


def _with_near_identical(loglik: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Append copies of rows 0..2 that differ by about 1e-6 relative (a few float32 ulps)."""
    copies = loglik[:3] * (1 + 1e-6 * rng.standard_normal((3, loglik.shape[1])))
    return np.vstack([loglik, copies.astype(np.float32)])


def test_per_model_constant_changes_nothing():
    loglik = _loglik_matrix(12, 300)
    shifted = loglik + np.linspace(-50, 50, 12, dtype=np.float32)[:, None]
    a = llmath.variance_matrix(llmath.prepare(loglik, None))
    b = llmath.variance_matrix(llmath.prepare(shifted, None))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    pa = llmath.pair_kl(loglik[0], loglik[1], 100.0)
    pb = llmath.pair_kl(shifted[0], shifted[1], 100.0)
    assert pa.kl_nats == pytest.approx(pb.kl_nats, rel=1e-6)
    assert pa.se_nats == pytest.approx(pb.se_nats, rel=1e-5)
    np.testing.assert_allclose(llmath.center_rows(loglik), llmath.center_rows(shifted), atol=1e-3)


def test_column_centering_leaves_distances_unchanged():
    loglik = _loglik_matrix(10, 200).astype(np.float64)
    rows = llmath.center_rows(loglik)
    double = llmath.double_center(loglik)
    np.testing.assert_allclose(double.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(double.mean(axis=1), 0.0, atol=1e-9)

    def pairwise(x):
        return ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)

    np.testing.assert_allclose(pairwise(rows), pairwise(double), rtol=1e-9)
    np.testing.assert_allclose(pairwise(rows) / 200, _brute_variance(loglik), rtol=1e-9)


def test_clipping_uses_the_recorded_threshold():
    loglik = _loglik_matrix(20, 500)
    c = llmath.clip_threshold(loglik)
    assert c == pytest.approx(np.percentile(loglik, 2.0))
    assert np.mean(loglik < c) == pytest.approx(0.02, abs=0.002)
    recorded = -400.0
    prepared = llmath.prepare(loglik, recorded)
    np.testing.assert_array_equal(prepared.clipped, np.maximum(loglik, np.float32(recorded)))
    assert prepared.clipped.min() == np.float32(recorded) or loglik.min() > recorded
    # a new vector placed into the version is clipped at the same threshold, not its own percentile
    new = loglik[0].copy()
    new[:10] = -1000.0
    np.testing.assert_array_equal(llmath.clip(new, recorded)[:10], np.float32(recorded))
    # no threshold: values are kept
    np.testing.assert_array_equal(llmath.prepare(loglik, None).clipped, loglik)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_prepare_double_centres_exactly(engine):
    if engine == "numba":
        pytest.importorskip("numba")
    loglik = _loglik_matrix(40, 333, seed=3)
    prepared = llmath.prepare(loglik, -420.0, engine=engine)
    exact = llmath.double_center(np.maximum(loglik, np.float32(-420.0)))
    np.testing.assert_allclose(prepared.centered, exact, atol=2e-5)
    np.testing.assert_allclose(prepared.sq_norms, (prepared.centered.astype(np.float64) ** 2).sum(axis=1), rtol=1e-12)
    vector = prepared.center_vector(prepared.clipped[7])
    np.testing.assert_allclose(vector, prepared.centered[7], atol=2e-5)


def test_numba_and_numpy_prepare_agree():
    pytest.importorskip("numba")
    rng = np.random.default_rng(4)
    loglik = _with_near_identical(_loglik_matrix(64, 1001, seed=4), rng)
    a = llmath.prepare(loglik, -380.0, engine="numpy")
    b = llmath.prepare(loglik, -380.0, engine="numba")
    np.testing.assert_array_equal(a.clipped, b.clipped)
    np.testing.assert_allclose(a.centered, b.centered, atol=1e-5)
    np.testing.assert_allclose(a.sq_norms, b.sq_norms, rtol=1e-6)
    np.testing.assert_allclose(a.col_mean, b.col_mean, rtol=1e-10)
    c = llmath.prepare_clipped(a.clipped.copy(), engine="numba")
    np.testing.assert_allclose(c.centered, a.centered, atol=1e-5)
    # 'auto' picks numba only for large matrices; small ones stay on numpy and agree anyway
    auto = llmath.prepare(loglik, -380.0)
    np.testing.assert_allclose(auto.centered, a.centered, atol=1e-5)


def test_prepare_rejects_unknown_engine_and_empty_matrix():
    with pytest.raises(ValueError, match="engine"):
        llmath.prepare(_loglik_matrix(3, 4), None, engine="cuda")
    with pytest.raises(ValueError, match="non-empty"):
        llmath.prepare(np.empty((0, 5), np.float32), None)


def _brute_nearest(clipped: np.ndarray, query: int, mask: np.ndarray, k: int):
    x = clipped.astype(np.float64)
    var = (x - x[query]).var(axis=-1)
    allowed = np.flatnonzero(mask)
    order = allowed[np.argsort(var[allowed], kind="stable")][:k]
    return order, var[order]


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_nearest_equals_brute_force_float64_ranking(engine):
    """Includes near-identical rows (1e-6 relative), where float32 |a|^2 + |b|^2 - 2ab cancels."""
    if engine == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    loglik = _with_near_identical(_loglik_matrix(80, 2000, seed=5), rng)
    # a second group of near-identical rows around row 10, at graded tiny distances
    base = loglik[10]
    graded = [base * (1 + s * rng.standard_normal(base.size)) for s in (3e-7, 1e-6, 2e-6, 5e-6, 1e-5)]
    loglik = np.vstack([loglik, np.array(graded, dtype=np.float32)])
    prepared = llmath.prepare(loglik, None, engine=engine)
    k_all = loglik.shape[0]
    for query in (0, 1, 10, k_all - 1, 40):
        mask = np.ones(k_all, dtype=bool)
        mask[query] = False
        for k in (1, 3, 6, 10):
            idx, var, se = llmath.nearest(prepared, prepared.clipped[query], k, mask)
            want_idx, want_var = _brute_nearest(prepared.clipped, query, mask, k)
            np.testing.assert_array_equal(idx, want_idx)
            np.testing.assert_allclose(var, want_var, rtol=1e-10)
            _, want_se = llmath.variance_with_se(prepared.clipped[idx].astype(np.float64) - prepared.clipped[query])
            np.testing.assert_allclose(se, want_se, rtol=1e-10)
    # a candidate mask restricts the answer; k above the allowed count returns what there is
    mask = np.zeros(k_all, dtype=bool)
    mask[[5, 6, 7]] = True
    idx, var, _ = llmath.nearest(prepared, prepared.clipped[0], 10, mask)
    assert sorted(idx.tolist()) == [5, 6, 7]
    assert np.all(np.diff(var) >= 0)


def test_nearest_rejects_k_below_one():
    prepared = llmath.prepare(_loglik_matrix(5, 10), None)
    with pytest.raises(ValueError):
        llmath.nearest(prepared, prepared.clipped[0], 0)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_kl_matrix_equals_brute_force(engine):
    if engine == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(6)
    loglik = _with_near_identical(_loglik_matrix(50, 1500, seed=6), rng)
    prepared = llmath.prepare(loglik, -450.0, engine=engine)
    want = _brute_variance(prepared.clipped)
    got = llmath.variance_matrix(prepared)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=0)
    np.testing.assert_array_equal(got, got.T)
    assert np.all(np.diag(got) == 0)
    # the near-identical pairs are exact, not float32 noise
    for a, b in ((0, 50), (1, 51), (2, 52)):
        assert got[a, b] == pytest.approx(want[a, b], rel=1e-10)
    np.testing.assert_allclose(llmath.sq_distance_matrix(prepared), want * 1500, rtol=1e-3)


def test_variance_se_matrix_equals_per_pair_variance_with_se():
    rng = np.random.default_rng(7)
    loglik = _with_near_identical(_loglik_matrix(30, 800, seed=7), rng)
    prepared = llmath.prepare(loglik, None)
    se = llmath.variance_se_matrix(prepared)
    x = prepared.clipped.astype(np.float64)
    _, want = llmath.variance_with_se(x[:, None, :] - x[None, :, :])
    np.testing.assert_allclose(se, want, rtol=1e-3, atol=0)
    for a, b in ((0, 30), (1, 31), (2, 32)):  # near-identical: computed exactly
        assert se[a, b] == pytest.approx(want[a, b], rel=1e-10)
    assert np.all(np.diag(se) == 0)


def test_from_variance_and_units():
    est = llmath.from_variance(np.array([2.0, 4.0]), np.array([0.2, 0.4]), mean_bytes=1000.0)
    np.testing.assert_allclose(est.kl_nats, [1.0, 2.0])
    np.testing.assert_allclose(est.se_nats, [0.1, 0.2])
    np.testing.assert_allclose(est.kl_bpb, np.array([1.0, 2.0]) / (1000.0 * np.log(2)))
    scalar = llmath.from_variance(2.0, 0.2, 1000.0)
    assert isinstance(scalar.kl_nats, float)


def test_numba_threshold_is_large():
    """'auto' never pays numba's import for the small matrices of a CLI query."""
    assert centering.NUMBA_MIN_SIZE >= 1_000_000
