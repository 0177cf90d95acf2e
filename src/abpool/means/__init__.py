"""The means model: a hierarchical normal model of a continuous metric's arm means.

``ȳ_j ~ Normal(θ_j, s_j²/n_j)``, ``θ_j ~ Normal(μ, τ²)``, ``μ`` flat, ``τ``
flat (BDA3 §5.4–5.5, "eight schools") or half-Cauchy / half-normal. The
statistics live in :mod:`abpool.continuous` (the exact grid engine, NUTS, the
priors) and the data layer in :mod:`abpool.data.moments`; this package fits
the model (:mod:`~abpool.means.fit`) and gives its result
(:mod:`~abpool.means.result`), registered with :mod:`abpool.result`.
"""

from abpool.means.fit import analyze_means, fit_means
from abpool.means.result import MEAN_VOCABULARY, MODEL_NAME, MeansResult
from abpool.result import ModelEntry, register_model

register_model(ModelEntry(MODEL_NAME, MeansResult, analyze_means))

__all__ = ["MEAN_VOCABULARY", "MeansResult", "analyze_means", "fit_means"]
