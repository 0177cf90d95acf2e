"""A saved run's draws written from a kept file of the same layout read back as xarray's own write of them."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import abpool
from abpool import store


def _read(path):
    with xr.open_datatree(str(path), engine="h5netcdf") as opened:
        return opened.load()


def _same_file_contents(fast, slow) -> None:
    a, b = _read(fast), _read(slow)
    xr.testing.assert_identical(a, b)
    assert [(key, type(value), value) for key, value in a.attrs.items()] == [
        (key, type(value), value) for key, value in b.attrs.items()
    ]
    for node_a, node_b in zip(a.subtree, b.subtree, strict=True):
        for name in node_a.variables:
            kept = {key: value for key, value in node_a[name].encoding.items() if key != "source"}
            assert repr(kept) == repr({key: value for key, value in node_b[name].encoding.items() if key != "source"})


@pytest.fixture
def fresh_layouts(monkeypatch):
    monkeypatch.setattr(store, "_LAYOUTS", type(store._LAYOUTS)())
    return store._LAYOUTS


def test_runs_of_one_layout_read_back_as_written_by_xarray(tmp_path, fresh_layouts):
    rng = np.random.default_rng(0)
    results = [
        abpool.analyze_variants(successes=rng.binomial(5_000, 0.1, 4), trials=[5_000] * 4, seed=seed)
        for seed in range(3)
    ] + [abpool.analyze_variants(successes=[490, 520, 480, 530], trials=[5_000] * 4, seed=9, rope=0.01, ci=0.9)]
    for number, result in enumerate(results):
        store.write_draws(result.tree, tmp_path / f"fast{number}.nc")
        result.tree.to_netcdf(str(tmp_path / f"slow{number}.nc"), engine="h5netcdf")
    assert len(fresh_layouts) == 1
    for number in range(len(results)):
        _same_file_contents(tmp_path / f"fast{number}.nc", tmp_path / f"slow{number}.nc")


def test_other_attributes_and_other_layouts(tmp_path, fresh_layouts):
    first = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, seed=1)
    store.write_draws(first.tree, tmp_path / "first.nc")
    # Other root attributes (names and types): every attribute is written anew.
    other = abpool.analyze_variants(successes=[31, 52, 54], trials=[100] * 3, seed=2).tree
    other.attrs = {"note": "other attributes", "count": 3}
    store.write_draws(other, tmp_path / "fast.nc")
    other.to_netcdf(str(tmp_path / "slow.nc"), engine="h5netcdf")
    _same_file_contents(tmp_path / "fast.nc", tmp_path / "slow.nc")
    # Other arms, booleans (written as int8, as xarray encodes them), and a variable with attributes (no layout).
    renamed = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, names=["x", "y", "z"], seed=1).tree
    flagged, flagged_again = first.tree.copy(), other.copy()
    for tree in (flagged, flagged_again):
        draws = np.random.default_rng(len(fresh_layouts)).random(20_000) > 0.5
        tree["posterior"] = tree["posterior"].to_dataset().assign(flag=("draw", draws))
    described = first.tree.copy()
    described["posterior"]["a"].attrs["units"] = "none"
    trees = {"renamed": renamed, "flagged": flagged, "flagged-again": flagged_again, "described": described}
    for name, tree in trees.items():
        store.write_draws(tree, tmp_path / f"{name}-fast.nc")
        tree.to_netcdf(str(tmp_path / f"{name}-slow.nc"), engine="h5netcdf")
        _same_file_contents(tmp_path / f"{name}-fast.nc", tmp_path / f"{name}-slow.nc")
    assert store._layout(described) is None
    assert len(fresh_layouts) == 3


def test_saved_runs_of_one_layout_load_back(tmp_path):
    results = [abpool.analyze_variants(successes=[30 + seed, 50, 55], trials=[100] * 3, seed=seed) for seed in range(3)]
    for seed, result in enumerate(results):
        back = abpool.load(result.save(tmp_path / f"run{seed}", report=False))
        np.testing.assert_array_equal(back.rate_draws(), result.rate_draws())
        assert back.to_dict() == result.to_dict()


def test_runs_written_from_held_draws_match_xarrays_write(tmp_path, fresh_layouts, monkeypatch):
    # A batch's results hold their draws as arrays: after the first of a layout, no DataTree is built to save one.
    monkeypatch.setattr(store, "_HELD_LAYOUTS", type(store._HELD_LAYOUTS)())
    rng = np.random.default_rng(1)
    results = [
        abpool.analyze_variants(successes=rng.binomial(5_000, 0.1, 4), trials=[5_000] * 4, seed=seed)
        for seed in range(3)
    ]
    for number, result in enumerate(results):
        store._write_result_draws(result, tmp_path / f"fast{number}.nc")
    assert len(store._HELD_LAYOUTS) == 1 and len(fresh_layouts) == 1
    for number, result in enumerate(results):
        if number:
            # Written without the DataTree: built now only to compare with xarray's own write.
            assert isinstance(result._draws, store.DrawTree)
        result.tree.to_netcdf(str(tmp_path / f"slow{number}.nc"), engine="h5netcdf")
        _same_file_contents(tmp_path / f"fast{number}.nc", tmp_path / f"slow{number}.nc")
