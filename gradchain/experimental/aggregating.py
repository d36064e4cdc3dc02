"""Optax's ``optax.experimental.aggregating``: transformations of per-example gradients
(`Aggregator`, `process`, averaging and accumulation, mean and variance tracking).
"""

from gradchain._aggregating import AccumulateAvgUpdatesState as AccumulateAvgUpdatesState
from gradchain._aggregating import AggregatedUpdates as AggregatedUpdates
from gradchain._aggregating import Aggregator as Aggregator
from gradchain._aggregating import AggregatorUpdateFn as AggregatorUpdateFn
from gradchain._aggregating import MaybeAxis as MaybeAxis
from gradchain._aggregating import (
    PerElementMeanAndSumSqDiffGradsState as PerElementMeanAndSumSqDiffGradsState,
)
from gradchain._aggregating import PerElementMeanAndVarianceEMAState as PerElementMeanAndVarianceEMAState
from gradchain._aggregating import PerElementUpdates as PerElementUpdates
from gradchain._aggregating import accumulate_avg_updates as accumulate_avg_updates
from gradchain._aggregating import add_mean_variance_to_opt as add_mean_variance_to_opt
from gradchain._aggregating import average_incrementally_updates as average_incrementally_updates
from gradchain._aggregating import average_per_element_updates as average_per_element_updates
from gradchain._aggregating import get_batch_size_from_per_elt_updates as get_batch_size_from_per_elt_updates
from gradchain._aggregating import (
    get_per_element_mean_and_sum_sq_diff_grads as get_per_element_mean_and_sum_sq_diff_grads,
)
from gradchain._aggregating import get_unbiased_mean_and_variance_ema as get_unbiased_mean_and_variance_ema
from gradchain._aggregating import process as process
from gradchain._aggregating import (
    track_per_element_mean_and_variance_with_ema as track_per_element_mean_and_variance_with_ema,
)

__all__ = sorted(n for n in dir() if not n.startswith("_"))
