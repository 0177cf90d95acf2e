"""The segments model's compiled log density against PyMC's, and the sampler path that uses it.

The kernel in :mod:`abpool.segments.density` is the model written out by hand;
the PyMC model of :mod:`abpool.segments.model` is the reference. Their log
densities and gradients must agree to 1e-8 at any point and for any data, and
the posteriors sampled through either must agree within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import abpool
from abpool.data import load_cells
from abpool.errors import AbpoolError
from abpool.segments import density
from abpool.segments.layout import layout_from_cells
from abpool.segments.model import build_segments_model, model_data
from abpool.segments.priors import SegmentsPrior, get_segments_prior

pytestmark = pytest.mark.xdist_group("segments-kernel")

# (segments, treatment arms, fewest and most trials per cell, prior)
CASES = [
    pytest.param(2, 1, 100, 100, "article", id="article-shape"),
    pytest.param(5, 2, 10, 1_000, "flat", id="two-treatments"),
    pytest.param(3, 3, 1, 20, "conservative", id="tiny-cells"),
    pytest.param(4, 1, 10**6, 10**9, "article", id="huge-cells"),
    pytest.param(40, 1, 1, 50, "article", id="many-small-segments"),
    # Past the kernel's scratch space on the stack (256 segments): the heap's.
    pytest.param(300, 2, 1, 10**5, "article", id="many-segments"),
]


def random_layout(rng: np.random.Generator, segments: int, treatments: int, fewest: int, most: int):
    rows = []
    for s in range(segments):
        for arm in ["control"] + [f"t{k}" for k in range(treatments)]:
            n = int(rng.integers(fewest, most + 1))
            # Rates near 0 and 1 as well as in between, so some cells are all failures or all successes.
            rate = rng.choice([0.0, 1.0, rng.uniform(0.01, 0.99)], p=[0.1, 0.1, 0.8])
            rows.append({"segment": f"s{s}", "arm": arm, "trials": n, "successes": int(rng.binomial(n, rate))})
    return layout_from_cells(load_cells(pd.DataFrame(rows), segment="segment"), "control")


def pytensor_reference(layout, prior: SegmentsPrior):
    """The PyMC model's log density and gradient, in the kernel's coordinate order."""
    model = build_segments_model(layout, prior, "conditioned")
    logp = model.compile_logp(mode="FAST_COMPILE")
    dlogp = model.compile_dlogp(mode="FAST_COMPILE")
    names = [v.name for v in model.value_vars]
    segments, treatments = layout.shape

    def pieces(x):
        return {
            "sigma_a_log__": x[0:1],
            "sigma_b_log__": x[1 : 1 + treatments],
            "mu_a_u": x[1 + treatments : 2 + treatments],
            "mu_b_u": x[2 + treatments : 2 + 2 * treatments],
            "a_u": x[2 + 2 * treatments : 2 + 2 * treatments + segments],
            "b_u": x[2 + 2 * treatments + segments :],
        }

    def evaluate(x):
        point = {
            name: value.reshape(model.initial_point()[name].shape) if name != "sigma_a_log__" else value[0]
            for name, value in pieces(x).items()
        }
        return float(logp(point)), np.asarray(dlogp(point))

    def to_kernel_order(gradient):
        # compile_dlogp returns the value variables' gradients flattened in the model's order.
        sizes = {name: piece.size for name, piece in pieces(np.zeros(density.coordinate_count(*layout.shape))).items()}
        parts, start = {}, 0
        for name in names:
            parts[name] = gradient[start : start + sizes[name]]
            start += sizes[name]
        return np.concatenate([parts[name] for name in pieces(np.zeros(1))])

    return evaluate, to_kernel_order


@pytest.mark.parametrize("segments,treatments,fewest,most,prior_name", CASES)
def test_log_density_and_gradient_match_pytensor_autodiff(rng, segments, treatments, fewest, most, prior_name):
    layout = random_layout(rng, segments, treatments, fewest, most)
    prior = get_segments_prior(prior_name)
    evaluate, to_kernel_order = pytensor_reference(layout, prior)
    buffer = density.pack(model_data(layout, "conditioned"), prior.nu, prior.location_scale, prior.scale)
    dimension = density.coordinate_count(segments, treatments)
    worst_value = worst_gradient = 0.0
    for _ in range(25):
        x = rng.normal(0.0, 2.0, dimension)
        x[: 1 + treatments] = rng.uniform(-4.0, 2.5, 1 + treatments)  # log sigma, from tiny to large spreads
        reference, reference_gradient = evaluate(x)
        value, gradient = density.log_density_and_gradient(x, buffer)
        reference_gradient = to_kernel_order(reference_gradient)
        worst_value = max(worst_value, abs(value - reference) / max(1.0, abs(reference)))
        worst_gradient = max(
            worst_gradient,
            np.max(np.abs(gradient - reference_gradient)) / max(1.0, np.max(np.abs(reference_gradient))),
        )
    print(f"worst relative error: log density {worst_value:.2e}, gradient {worst_gradient:.2e}")
    assert worst_value <= 1e-8
    assert worst_gradient <= 1e-8


@pytest.mark.parametrize("segments,treatments,fewest,most,prior_name", CASES)
def test_kept_parameters_match_the_pymc_models_reconstruction(rng, segments, treatments, fewest, most, prior_name):
    # The sampler keeps mu_a, a, mu_b and b computed by the kernel; complete_draws rebuilds them from the
    # PyMC model's coordinates with numpy. Same model, two codes: they must agree to rounding.
    from abpool.segments.model import _conditioned_parameters

    layout = random_layout(rng, segments, treatments, fewest, most)
    prior = get_segments_prior(prior_name)
    data = model_data(layout, "conditioned")
    buffer = density.pack(data, prior.nu, prior.location_scale, prior.scale)
    dimension = density.coordinate_count(segments, treatments)
    for _ in range(25):
        x = rng.normal(0.0, 2.0, dimension)
        x[: 1 + treatments] = rng.uniform(-4.0, 2.5, 1 + treatments)
        kept = density.parameters_at(x, buffer)
        draws = {
            "sigma_a": np.exp(x[0]),
            "sigma_b": np.exp(x[1 : 1 + treatments]),
            "mu_a_u": x[1 + treatments],
            "mu_b_u": x[2 + treatments : 2 + 2 * treatments],
            "a_u": x[2 + 2 * treatments : 2 + 2 * treatments + segments],
            "b_u": x[2 + 2 * treatments + segments :].reshape(treatments, segments),
        }
        mu_a, a, mu_b, b, _ = _conditioned_parameters(np, draws, data, prior, treatments)
        expected = np.concatenate([[draws["sigma_a"]], draws["sigma_b"], [mu_a], mu_b, a, np.stack(b, axis=-1).ravel()])
        np.testing.assert_allclose(kept, expected, rtol=1e-10, atol=1e-10 * np.max(np.abs(expected)))


def test_kernel_reports_a_non_finite_density_or_a_wrong_dimension_to_the_sampler():
    # nutpie reads the entry point's status: 0 fine, 3/4 a non-finite gradient/density (a rejected step),
    # -1 a dimension that is not the buffer's.
    layout = random_layout(np.random.default_rng(0), 2, 1, 10, 10)
    buffer = density.pack(model_data(layout, "conditioned"), 3.0, 1.0, 1.0)
    log_density = density._LOG_DENSITY(density.c_functions().log_density)
    expand = density._EXPAND(density.c_functions().expand)

    def status(x, dim=None):
        grad, value = np.empty(x.size), np.empty(1)
        dim = x.size if dim is None else dim
        return log_density(dim, x.ctypes.data, grad.ctypes.data, value.ctypes.data, buffer.ctypes.data)

    x = np.zeros(density.coordinate_count(2, 1))
    assert status(x) == 0
    assert status(x, dim=x.size - 1) == -1
    out = np.empty(x.size)
    assert expand(x.size, x.size - 1, x.ctypes.data, out.ctypes.data, buffer.ctypes.data) == -1
    x[0] = 800.0  # sigma_a = exp(800) overflows
    assert status(x) in (3, 4)
    value, gradient = density.log_density_and_gradient(x, buffer)
    assert not (np.isfinite(value) and np.isfinite(gradient).all())
    x[0], x[-1] = 0.0, np.nan
    assert status(x) in (3, 4)


def test_the_kernel_reads_the_buffer_pack_writes():
    from abpool.segments import _kernel

    assert _kernel.HEADER == density.HEADER
    with pytest.raises(ValueError, match="x has 3 coordinates"):
        density.log_density_and_gradient(
            np.zeros(3),
            density.pack(
                model_data(random_layout(np.random.default_rng(1), 2, 1, 10, 10), "conditioned"), 3.0, 1.0, 1.0
            ),
        )


def test_an_install_without_the_compiled_kernel_is_refused_in_one_line(tmp_path):
    import subprocess
    import sys

    data = tmp_path / "cells.csv"
    data.write_text(
        "country,treated,trials,successes\nCanada,0,100,30\nCanada,1,100,50\nChina,0,100,55\nChina,1,100,60\n"
    )
    # None in sys.modules makes the import fail, as it does in an install that could not build the kernel.
    code = (
        "import sys, abpool.segments\n"
        "sys.modules['abpool.segments._kernel'] = None\n"
        "from abpool.segments import density\n"
        "try:\n"
        "    density.c_functions()\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
        "from abpool.cli import run\n"
        "sys.argv = ['abpool', 'segments', sys.argv[1], '--segment', 'country', '--arm', 'treated', '--control', '0']\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True)
    out = done.stdout.strip()
    assert out.startswith("AbpoolError abpool's compiled segments kernel is missing"), out
    assert "--sampler pymc" in out and "\n" not in out
    # The command line exits 2 with that line, and no traceback.
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"abpool: error: {out.removeprefix('AbpoolError ')}"], done.stderr


@pytest.mark.slow
def test_kernel_and_pymc_sample_the_same_posterior(seed, rng):
    # Two engines, one model: the kernel through nutpie, and PyMC's own NUTS on the PyMC model.
    from test_segments import simulate_segments

    frame, _, _ = simulate_segments(rng, segments=5, n=300)
    fits = {
        sampler: abpool.analyze_segments(frame, segment="segment", control="control", seed=seed, sampler=sampler)
        for sampler in ("nutpie", "pymc")
    }
    assert fits["nutpie"].provenance()["inference_library"].startswith("nutpie, abpool's compiled log density")
    import arviz as az

    for res in fits.values():
        assert res.diagnostics.converged, res.diagnostics.warnings
    for name in ("a", "b", "mu_a", "mu_b", "sigma_a", "sigma_b"):
        means = [res.tree["posterior"][name].mean(("chain", "draw")).values for res in fits.values()]
        errors = [az.mcse(res.idata.posterior[[name]])[name].values for res in fits.values()]
        # 4.5 combined standard errors: a false alarm has probability < 1e-5 per quantity.
        np.testing.assert_array_less(np.abs(means[0] - means[1]), 4.5 * np.hypot(*errors))


def test_an_unsupported_nutpie_is_refused_in_one_line(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.99.0")
    with pytest.raises(AbpoolError, match=r"nutpie 0\.99\.0 is installed.*sampler='pymc'") as caught:
        density.check_nutpie()
    assert "\n" not in str(caught.value)


def test_nutpie_private_interface_is_the_one_the_kernel_was_written_for():
    # The kernel reaches nutpie's Rust sampler through nutpie._lib, which has no stability promise:
    # this fails, naming what moved, as soon as an upgrade changes what the kernel calls.
    lib = density.nutpie_lib()
    density.check_nutpie()
    for name in ("PyNutsSettings", "PyVariable", "PyMcModel", "LogpFunc", "ExpandFunc", "PySampler", "ProgressType"):
        assert hasattr(lib, name), f"nutpie._lib.{name} is gone"
    assert callable(lib.PyNutsSettings.Diag) and callable(lib.PySampler.from_pymc)
    assert callable(lib.PyStorage.arrow) and callable(lib.PyVariable.new_variables)


def test_a_kernel_fit_builds_its_tree_when_read():
    import xarray as xr

    frame = pd.DataFrame(
        {"country": ["Canada", "Canada", "China", "China"], "treated": ["0", "1", "0", "1"], "trials": 100}
        | {"successes": [30, 50, 55, 60]}
    )
    res = abpool.analyze_segments(
        frame, segment="country", arm="treated", control="0", seed=1, draws=200, on_unconverged="ignore"
    )
    held = res._draws
    assert not isinstance(held, xr.DataTree)
    tree = res.tree
    assert isinstance(tree, xr.DataTree) and res.tree is tree and res._draws is tree
    assert set(tree.children) == {"posterior", "sample_stats", "observed_data"}
    assert tree.attrs == held.attrs and tree.attrs["model"] == "segments"
    posterior = tree["posterior"]
    assert posterior["b"].dims == ("chain", "draw", "segment", "treatment")
    assert list(posterior["b"].coords["segment"].values) == ["Canada", "China"]
    for name in ("mu_a", "sigma_a", "a", "mu_b", "sigma_b", "b"):
        np.testing.assert_array_equal(posterior[name].values, held["posterior"][name].values)
    np.testing.assert_array_equal(tree["observed_data"]["successes"].values, [[30, 50], [55, 60]])


def test_a_segments_fit_imports_nothing_heavy():
    # The default path must not load PyMC, PyTensor, ArviZ or statsmodels (measured: seconds of import).
    import subprocess
    import sys

    code = (
        "import sys, abpool, pandas as pd\n"
        "frame = pd.DataFrame({'country': ['Canada', 'Canada', 'China', 'China'], 'treated': ['0', '1', '0', '1'],"
        " 'trials': [100] * 4, 'successes': [30, 50, 55, 60]})\n"
        "res = abpool.analyze_segments(frame, segment='country', arm='treated', control='0', seed=1)\n"
        "res.summary(); res.to_dict(); res.sentences(); res.classical()\n"
        "heavy = {'pymc', 'pytensor', 'arviz', 'statsmodels', 'matplotlib', 'xarray', 'dask'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


def test_a_one_off_segments_command_loads_only_what_it_uses(tmp_path):
    # A one-off `abpool segments` is mostly imports: xarray (and the Dask it imports) only when the tree is
    # read, and no compiler at all: the kernel was compiled when abpool was installed.
    # SciPy's special functions cost a sixth of the command: abpool._special computes the four it needs.
    import subprocess
    import sys

    data = tmp_path / "cells.csv"
    data.write_text(
        "country,treated,trials,successes\nCanada,0,100,30\nCanada,1,100,50\nChina,0,100,55\nChina,1,100,60\n"
    )
    code = (
        "import sys\n"
        "from abpool.cli import run\n"
        "sys.argv = ['abpool', 'segments', sys.argv[1], '--segment', 'country', '--arm', 'treated', '--control', '0']\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = {'pymc', 'pytensor', 'arviz', 'statsmodels', 'matplotlib', 'jinja2', 'xarray', 'dask', 'numba',"
        " 'llvmlite'}\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & heavy\n"
        "unused = ('abpool.batch', 'abpool.scorecard', 'scipy.special', 'scipy.fft',"
        " 'scipy.stats')\n"
        "loaded |= {m for m in unused if m in sys.modules}\n"
        "print(sorted(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
