"""The variants model: a hierarchical Beta-Binomial model of an A/B/n test.

``y_j ~ Binomial(n_j, theta_j)``, ``theta_j ~ Beta(a, b)``, ``p(a, b) ∝ (a + b)^(-5/2)``
(Gelman et al., BDA3 §5.3) or a proper alternative. Everything about the model
is in this package: its priors (:mod:`~abpool.variants.priors`), the exact
engine (:mod:`~abpool.variants.grid`, :mod:`~abpool.variants.engines`), the
PyMC cross-check, fitting (:mod:`~abpool.variants.fit`) and its result
(:mod:`~abpool.variants.result`), registered with :mod:`abpool.result`.
"""

from abpool.result import ModelEntry, register_model
from abpool.variants.fit import analyze_variants, fit_variants
from abpool.variants.priors import BDAPrior, LogNormalPrior, get_variants_prior
from abpool.variants.result import MODEL_NAME, VariantsResult

register_model(ModelEntry(MODEL_NAME, VariantsResult, analyze_variants))

__all__ = ["BDAPrior", "LogNormalPrior", "VariantsResult", "analyze_variants", "fit_variants", "get_variants_prior"]
