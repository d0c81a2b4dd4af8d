"""fwtool.core.stats.percentile is nearest rank, the same as numpy's inverted_cdf for every sample count the
monitor, validate and fleet reports see (before, the fleet report picked another rank for 212 of n = 1..499)."""
import numpy as np
import pytest

from fwtool.core.stats import percentile


@pytest.mark.parametrize("q", [50, 90, 95, 99, 100, 0.5])
def test_percentile_matches_numpy_inverted_cdf_for_n_1_to_499(q):
    rng = np.random.default_rng(0)
    for n in range(1, 500):
        values = rng.integers(0, 10_000, n).tolist()
        assert percentile(values, q) == np.percentile(values, q, method="inverted_cdf"), (n, q)


def test_percentile_edges():
    assert percentile([], 95) is None
    assert percentile([7], 95) == 7 and percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3
    assert percentile(list(range(1, 21)), 95) == 19  # 20 values: p95 is the 19th


def test_the_old_fleet_rank_differed():
    """The rank commands/lab_options.py used (round(0.95 * (n - 1))) is not nearest rank for many n."""
    differ = sum(1 for n in range(1, 500)
                 if min(n - 1, int(round(0.95 * (n - 1)))) != max(1, int(np.ceil(0.95 * n))) - 1)
    assert differ > 0
