"""Calibration: synthetic experiments and studies of how often decision rules claim wrongly.

A calibration study simulates many experiments from a declared truth, applies
several decision rules to each, and counts how often each rule declares a
winner that is not there and how often it finds a real one.

Truth, variants (:class:`VariantsDesign`)
    ``arms`` variants with ``trials`` users each. Every arm's true rate is
    ``base_rate`` (an A/A study), except that with a non-zero ``effect`` the
    **last** ``effect_arms`` arms (default: only the last arm) have rate
    ``base_rate + effect``. Truly different pairs are therefore those with
    exactly one arm among the last ``effect_arms``. The truth is the same in
    every experiment.

Truth, segments (:class:`SegmentsDesign`)
    ``segments`` segments × (control, treatment), ``trials`` users per cell.
    Each experiment draws its own truth on the log-odds scale: segment ``s``
    has control logit ``a_s ~ Normal(logit(base_rate), base_rate_spread)``
    (default spread 0.2: at a base rate of 0.5, 95% of segments' control rates
    lie between 0.40 and 0.60) and treatment effect
    ``b_s ~ Normal(effect, effect_spread)``; the treatment rate is
    ``invlogit(a_s + b_s)``. ``effect = effect_spread = 0`` is the A/A study
    (every segment's treatment equals its control). The comparisons are
    "treatment beats control" within each segment.

Rules (all applied to every comparison ``(i, j)`` of the same experiment: every
pair of arms, or treatment against control in every segment)
    ``bayes_pXX``
        Fit the variants model (exact engine) or the segments model (nutpie
        NUTS) and claim "i beats j" when ``P(theta_i > theta_j) >= XX%``
        ("j beats i" when it is ``<= 1 - XX%``).
    ``bayes_pXX_lossL``
        The same, and the *pairwise loss* of choosing i over j,
        ``E[max(theta_j - theta_i, 0)]``, is below ``L`` (not the results'
        ``expected_loss``, which is against the best of all arms).
    ``uncorrected``, ``bonferroni``, ``holm``, ``bh``
        Two-sided two-proportion test of every pair (z-test, Fisher's exact
        test for small counts, :mod:`abpool.classical`); claim "i beats j" when
        the (adjusted) p-value is below ``alpha`` and the observed rate of i is
        higher. The family is every comparison of the experiment (every pair
        of arms; every segment's treatment-control test, as in
        :func:`abpool.classical.classical_comparisons`).

Scores (per experiment, per rule)
    A claim "i beats j" is *false* when truly ``theta_i <= theta_j``: either the
    rates are equal or the sign is wrong. Then, over the experiments:

    * ``family_wise_error``: share of experiments with at least one false claim;
    * ``false_discovery_rate``: mean over experiments of false claims / claims
      (0 when there is no claim);
    * ``power``: mean share of truly different pairs claimed with the right
      sign, over the experiments that have one (``None`` for A/A studies);
    * ``wrong_sign_rate``: share of experiments with at least one claim whose
      sign is opposite to a true difference (``None`` for A/A studies).

    Each comes with a 95% Monte Carlo interval: Wilson's score interval. For
    ``false_discovery_rate`` and ``power``, averages of per-experiment shares
    in [0, 1], the Wilson interval is conservative: such a mean has a variance of
    at most ``m (1 - m) / n``, the variance the interval assumes.

Seeds
    Experiment ``k`` of a design draws from
    ``SeedSequence(seed, spawn_key=design.seed_key).spawn(experiments)[k]``
    (``seed_key`` is ``(J,)`` for ``J`` arms, ``(S, 2)`` for ``S`` segments of two
    arms): the study does not depend on the number of workers or the chunking,
    and the 4-arm part of a 2/4/8-arm study is the 4-arm study run on its own.

Fits that fail their checks
    A fit the model refuses (variants model, improper posterior) makes no
    Bayesian claim and is counted in ``refused_fits``. A fit that returns but
    fails a diagnostic check (segments model: divergences, R-hat or effective
    sample size, after the automatic refit at a higher ``target_accept``) is
    counted in ``fits_with_warnings`` and its draws are still used, as a user
    reading the result despite the warning would; the count is reported with
    every study so its share can be judged.

Segments studies and speed
    The segments model's compiled form depends only on the number of segments
    and arms, so nutpie compiles it once per study and every experiment only
    refits it with new counts. Such studies run in one process: the sampler
    already runs its chains on all cores.

Examples
--------
>>> design = VariantsDesign(arms=3, trials=100, base_rate=0.5)
>>> study = run_study(design, experiments=20, seed=1, workers=1)
>>> [row["rule"] for row in study.metrics()]
['bayes_p95', 'bonferroni', 'holm', 'bh', 'uncorrected']
>>> study.metrics()[0]["power"] is None
True
"""

from abpool.calibration.designs import Design, SegmentsDesign, VariantsDesign
from abpool.calibration.output import plot_study, study_payload, study_table, write_outputs
from abpool.calibration.rules import RuleSettings, bayes_claims, classical_claims, score_claims
from abpool.calibration.study import StudyResult, make_experiments, run_studies, run_study

__all__ = [
    "Design",
    "RuleSettings",
    "SegmentsDesign",
    "StudyResult",
    "VariantsDesign",
    "bayes_claims",
    "classical_claims",
    "make_experiments",
    "plot_study",
    "run_studies",
    "run_study",
    "score_claims",
    "study_payload",
    "study_table",
    "write_outputs",
]
