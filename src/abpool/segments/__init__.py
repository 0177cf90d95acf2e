"""The segments model: a varying-intercept, varying-slope logistic regression of an experiment by segment.

For segment ``s`` and arm ``k`` (``k = 0`` the control)::

    y_sk ~ Binomial(n_sk, p_sk),   logit p_sk = a_s + b_sk,   b_s0 = 0
    a_s ~ Normal(mu_a, sigma_a),   b_sk ~ Normal(mu_b_k, sigma_b_k)

with the article's priors by default. Everything about the model is in this
package: its priors, the layout of its cells (:mod:`~abpool.segments.layout`),
the PyMC model and its parameterisations (:mod:`~abpool.segments.model`),
fitting (:mod:`~abpool.segments.fit`) and its result
(:mod:`~abpool.segments.result`), registered with :mod:`abpool.result`.
"""

from abpool.result import ModelEntry, register_model
from abpool.segments.fit import analyze_segments
from abpool.segments.priors import SegmentsPrior, get_segments_prior
from abpool.segments.result import MODEL_NAME, SegmentsResult

register_model(ModelEntry(MODEL_NAME, SegmentsResult, analyze_segments))

__all__ = ["SegmentsPrior", "SegmentsResult", "analyze_segments", "get_segments_prior"]
