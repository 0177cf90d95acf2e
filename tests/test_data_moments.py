"""The continuous-metric data contract: moments against exact arithmetic, forms that agree, one error per bad input.

The truth every aggregate is checked against is computed here, independently
of DuckDB: exact rational arithmetic (:class:`fractions.Fraction`) for n, mean,
M2 and M3, numpy for quantiles and scipy for skewness.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import duckdb
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from abpool.continuous.stats import Moments
from abpool.data.moments import (
    ArmMoments,
    _merge_parts,
    load_moments,
    normal_approximation_warnings,
)
from abpool.errors import InvalidArgumentError, InvalidDataError


def exact(values) -> tuple[int, float, float, float]:
    """n, mean, M2 and M3 of ``values``, computed exactly and rounded once at the end."""
    xs = [Fraction(float(v)) for v in values]
    n = len(xs)
    mean = sum(xs, Fraction(0)) / n
    deviations = [x - mean for x in xs]
    m2 = sum((d * d for d in deviations), Fraction(0))
    m3 = sum((d * d * d for d in deviations), Fraction(0))
    return n, float(mean), float(m2), float(m3)


def expected_table(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """The exact moments of every (keys) cell of unit rows, in the order the cells are listed."""
    rows = []
    for key, group in frame.groupby(keys, sort=True):
        n, mean, m2, _ = exact(group[value])
        rows.append([*(key if isinstance(key, tuple) else (key,)), n, mean, m2])
    return pd.DataFrame(rows, columns=[*keys, "n", "mean", "m2"])


def units_frame(seed: int, per_cell: int = 400) -> pd.DataFrame:
    """Revenue-like unit rows (log-normal) in two segments and three arms, rows shuffled."""
    rng = np.random.default_rng(seed)
    frames = []
    for country in ("CA", "US"):
        for arm, scale in (("A", 10.0), ("B", 11.0), ("C", 12.0)):
            frames.append(
                pd.DataFrame({"country": country, "variant": arm, "revenue": scale * rng.lognormal(0.0, 1.0, per_cell)})
            )
    frame = pd.concat(frames, ignore_index=True)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def statistics_frame(frame: pd.DataFrame, form: str) -> pd.DataFrame:
    """The unit rows' sufficient statistics in one of the three forms, computed exactly."""
    rows = []
    for (country, arm), group in frame.groupby(["country", "variant"], sort=True):
        values = [Fraction(float(v)) for v in group["revenue"]]
        n, mean, m2, _ = exact(group["revenue"])
        sd = math.sqrt(m2 / (n - 1))
        row = {"country": country, "variant": arm, "n": n}
        if form == "sums":
            row |= {"sum": float(sum(values)), "sum_sq": float(sum(v * v for v in values))}
        elif form == "sd":
            row |= {"mean": mean, "sd": sd}
        else:
            row |= {"mean": mean, "se": sd / math.sqrt(n)}
        rows.append(row)
    return pd.DataFrame(rows)


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_moments_close(table: pd.DataFrame, expected: pd.DataFrame, rtol: float) -> None:
    keys = [c for c in expected.columns if c not in ("n", "mean", "m2")]
    assert table[keys].astype(str).values.tolist() == expected[keys].astype(str).values.tolist()
    assert table["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(table["mean"], expected["mean"], rtol=rtol)
    np.testing.assert_allclose(table["m2"], expected["m2"], rtol=rtol)


# ----------------------------------------------------------------------------- unit rows
def test_unit_rows_give_the_exact_moments(seed) -> None:
    frame = units_frame(seed)
    moments = load_moments(frame, segment="country")
    assert list(moments.table.columns) == ["country", "arm", "n", "mean", "m2", "skewness"]
    assert moments.table.dtypes[["n", "mean", "m2", "skewness"]].astype(str).tolist() == [
        "int64",
        "float64",
        "float64",
        "float64",
    ]
    expected = expected_table(frame, ["country", "variant"], "revenue").rename(columns={"variant": "arm"})
    assert_moments_close(moments.table, expected, rtol=1e-12)
    assert (moments.form, moments.value_column, moments.arm_column) == ("units", "revenue", "variant")
    assert moments.input_rows == len(frame)
    assert moments.arms == ("A", "B", "C")


def test_moments_are_exact_for_values_near_1e9(seed) -> None:
    rng = np.random.default_rng(seed)
    values = 1e9 + rng.normal(0.0, 1.0, 6000)
    frame = pd.DataFrame({"arm": np.repeat(["A", "B"], 3000), "value": values})
    table = load_moments(frame).table
    for i, arm in enumerate(["A", "B"]):
        n, mean, m2, m3 = exact(values[i * 3000 : (i + 1) * 3000])
        naive = float(np.sum(values[i * 3000 : (i + 1) * 3000] ** 2)) - n * mean * mean
        # The data really defeat Σx² − n·mean²: the check below is not passed by any formula.
        assert abs(naive - m2) > 0.01 * m2
        row = table[table["arm"] == arm].iloc[0]
        assert row["n"] == n
        assert row["mean"] == pytest.approx(mean, rel=1e-15)
        assert row["m2"] == pytest.approx(m2, rel=1e-12)
        skewness = (m3 / n) / (m2 / n) ** 1.5 * math.sqrt(n * (n - 1)) / (n - 2)
        assert row["skewness"] == pytest.approx(skewness, abs=1e-9)


def test_cells_on_far_apart_scales_stay_exact(seed) -> None:
    # The first thousand values (which set the shift of the sums) all come from the 1e9 segment: the
    # cells near 0 are far from it and must fall back on the streaming (Welford) variance and skewness.
    rng = np.random.default_rng(seed)
    big = 1e9 + rng.normal(0.0, 1.0, 2000)
    small = rng.normal(0.0, 1.0, 2000)
    frame = pd.DataFrame(
        {"scale": ["big"] * 2000 + ["small"] * 2000, "arm": ["A", "B"] * 2000, "value": np.concatenate([big, small])}
    )
    table = load_moments(frame, segment="scale").table
    for i, (scale, arm) in enumerate([("big", "A"), ("big", "B"), ("small", "A"), ("small", "B")]):
        values = (big if scale == "big" else small)[i % 2 :: 2]
        n, mean, m2, _ = exact(values)
        row = table.iloc[i]
        assert (row["scale"], row["arm"], row["n"]) == (scale, arm, n)
        assert row["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert row["m2"] == pytest.approx(m2, rel=1e-9)
        assert row["skewness"] == pytest.approx(scipy.stats.skew(values, bias=False), abs=1e-6)


def test_skewness_is_the_adjusted_sample_skewness(seed) -> None:
    # DuckDB's skewness and this table's are G1 = g1·√(n(n−1))/(n−2): scipy's skew(bias=False).
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 1.0, 1500)
    frame = pd.DataFrame({"arm": np.repeat(["A", "B", "C"], 500), "value": values})
    table = load_moments(frame).table
    expected = [scipy.stats.skew(values[i * 500 : (i + 1) * 500], bias=False) for i in range(3)]
    np.testing.assert_allclose(table["skewness"], expected, rtol=1e-9)


def test_small_and_constant_cells_have_no_skewness() -> None:
    frame = pd.DataFrame({"arm": ["A", "A", "B", "B", "B"], "value": [1.0, 3.0, 2.0, 2.0, 2.0]})
    table = load_moments(frame).table
    assert table["skewness"].isna().all()
    assert table["m2"].tolist() == [2.0, 0.0]


def test_zero_one_values_are_a_mean() -> None:
    frame = pd.DataFrame({"arm": ["A"] * 4 + ["B"] * 4, "value": [0, 1, 1, 0, 1, 1, 1, 0]})
    table = load_moments(frame).table
    assert table["mean"].tolist() == [0.5, 0.75]
    assert table["m2"].tolist() == [1.0, 0.75]


def test_cells_come_sorted_whatever_the_row_order(seed) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"arm": np.repeat(["B10", "B2", "A"], 5), "value": rng.normal(size=15)})
    first = load_moments(frame)
    shuffled = load_moments(frame.iloc[rng.permutation(15)])
    assert first.arms == ("A", "B2", "B10")
    pd.testing.assert_frame_equal(first.table[["arm", "n"]], shuffled.table[["arm", "n"]])
    np.testing.assert_allclose(first.table[["mean", "m2"]], shuffled.table[["mean", "m2"]], rtol=1e-12)


def test_label_groups_that_print_alike_merge_exactly(seed) -> None:
    # Two groups of the pass with one label (values that print alike) are one cell: merged, they must give
    # the moments of all their values, as one group would.
    rng = np.random.default_rng(seed)
    values = 50.0 + rng.normal(0.0, 3.0, 300)
    shift = 48.0

    def part(x: np.ndarray) -> dict:
        d = x - shift
        return {
            "rows": len(x),
            "n": len(x),
            "s1": math.fsum(d),
            "s2": math.fsum(d * d),
            "s3": math.fsum(d**3),
            "var": float(np.var(x)),
            "total": math.fsum(x),
            "skew": scipy.stats.skew(x, bias=False),
        }

    parts = pd.DataFrame([{"key_0": "A", **part(values[:100])}, {"key_0": "A", **part(values[100:])}])
    merged = _merge_parts(parts, ["key_0"])
    n, mean, m2, _ = exact(values)
    assert merged["n"].tolist() == [n]
    assert merged["mean"].iat[0] == pytest.approx(mean, rel=1e-14)
    assert merged["m2"].iat[0] == pytest.approx(m2, rel=1e-12)
    assert merged["skewness"].iat[0] == pytest.approx(scipy.stats.skew(values, bias=False), abs=1e-9)


# ----------------------------------------------------------------------------- sufficient statistics
@pytest.mark.parametrize("form", ["sums", "sd", "std_error"])
def test_statistics_agree_with_unit_rows(seed, form) -> None:
    frame = units_frame(seed)
    units = load_moments(frame, segment="country")
    stats = load_moments(statistics_frame(frame, form), segment="country")
    assert stats.form == "moments"
    assert (
        stats.statistics_columns
        == {
            "sums": {"n": "n", "sum": "sum", "sum_sq": "sum_sq"},
            "sd": {"n": "n", "mean": "mean", "sd": "sd"},
            "std_error": {"n": "n", "mean": "mean", "std_error": "se"},
        }[form]
    )
    pd.testing.assert_frame_equal(stats.table[["country", "arm", "n"]], units.table[["country", "arm", "n"]])
    np.testing.assert_allclose(stats.table["mean"], units.table["mean"], rtol=1e-9)
    np.testing.assert_allclose(stats.table["m2"], units.table["m2"], rtol=1e-9)
    assert stats.table["skewness"].isna().all()


@pytest.mark.parametrize("form", ["sums", "sd", "std_error"])
def test_statistics_and_unit_rows_share_a_fingerprint(seed, form) -> None:
    # Whole cents, 16 users per cell: every exact mean and M2 has at most 11 significant digits, so
    # rounding to 12 cannot split the forms, whatever the seed.
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "country": np.repeat(["CA", "US"], 48),
            "variant": np.tile(np.repeat(["A", "B", "C"], 16), 2),
            "revenue": rng.integers(0, 1000, 96).astype(float),
        }
    )
    units = load_moments(frame, segment="country")
    stats = load_moments(statistics_frame(frame, form), segment="country")
    assert stats.fingerprint == units.fingerprint
    assert load_moments(frame.iloc[::-1], segment="country").fingerprint == units.fingerprint
    changed = frame.assign(revenue=frame["revenue"].where(frame.index != 0, frame["revenue"].iat[0] + 1))
    assert load_moments(changed, segment="country").fingerprint != units.fingerprint


def test_statistics_keep_the_source_order() -> None:
    stats = pd.DataFrame({"arm": ["control", "B", "A"], "n": [40, 50, 60], "mean": [1.0, 2.0, 3.0], "sd": [1.0] * 3})
    moments = load_moments(stats, control="control")
    assert moments.arms == ("control", "B", "A")
    assert moments.table["m2"].tolist() == [39.0, 49.0, 59.0]
    assert moments.input_rows == 3


def test_statistics_columns_can_be_named() -> None:
    stats = pd.DataFrame({"grp": ["A", "B"], "users": [10, 20], "avg_rev": [1.0, 2.0], "sem_rev": [0.5, 0.25]})
    moments = load_moments(stats, arm="grp", mean="avg_rev", std_error="sem_rev")
    assert moments.statistics_columns == {"n": "users", "mean": "avg_rev", "std_error": "sem_rev"}
    np.testing.assert_allclose(moments.table["m2"], [0.25 * 10 * 9, 0.0625 * 20 * 19], rtol=1e-15)


def test_sums_that_cancel_are_refused() -> None:
    stats = pd.DataFrame({"arm": ["A", "B"], "n": [3, 3], "sum": [3e9, 3e9 + 3], "sum_sq": [3e18 + 2, 3e18 + 6e9 + 5]})
    message = (
        "row 1 of DataFrame (cell 'A'): the variance cannot be recovered from 'sum' and 'sum_sq' (they cancel "
        "when the mean is large relative to the spread); pass mean and sd columns instead"
    )
    with pytest.raises(InvalidDataError, match="^" + re.escape(message) + "$"):
        load_moments(stats)


# ----------------------------------------------------------------------------- cap
def test_cap_is_numpys_quantile_over_all_arms(seed) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 1.5, 3000)
    frame = pd.DataFrame({"arm": np.repeat(["A", "B", "C"], 1000), "value": values})
    moments = load_moments(frame, cap=0.95)
    cap = float(np.quantile(values, 0.95, method="linear"))
    assert moments.cap["value"] == pytest.approx(cap, rel=1e-14)
    assert (moments.cap["quantile"], moments.cap["scope"]) == (0.95, "experiment")
    assert moments.cap["capped"] == int((values > cap).sum())
    winsorised = np.minimum(values, moments.cap["value"])
    for i in range(3):
        cell = slice(i * 1000, (i + 1) * 1000)
        _, mean, m2, _ = exact(winsorised[cell])
        row = moments.table.iloc[i]
        assert row["capped"] == int((values[cell] > moments.cap["value"]).sum())
        assert row["mean"] == pytest.approx(mean, rel=1e-13)
        assert row["m2"] == pytest.approx(m2, rel=1e-12)
        assert row["skewness"] == pytest.approx(scipy.stats.skew(winsorised[cell], bias=False), rel=1e-9)
    assert moments.describe()["cap"] == moments.cap


@pytest.mark.parametrize("cap", [0, 1, 1.5, -0.1, True, "0.99"])
def test_cap_must_be_a_quantile(cap) -> None:
    frame = pd.DataFrame({"arm": ["A", "A", "B", "B"], "value": [1.0, 2.0, 3.0, 4.0]})
    message = f"cap must be a quantile between 0 and 1 (e.g. 0.99), got {cap!r}"
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(message) + "$"):
        load_moments(frame, cap=cap)


# ----------------------------------------------------------------------------- sources
@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "glob", "duckdb"])
def test_every_source_gives_the_same_moments(tmp_path, seed, fmt) -> None:
    frame = units_frame(seed, per_cell=50)
    reference = load_moments(frame, segment="country")
    options: dict = {}
    if fmt == "csv":
        source = tmp_path / "units.csv"
        frame.to_csv(source, index=False)
    elif fmt == "parquet":
        source = tmp_path / "units.parquet"
        frame.to_parquet(source)
    elif fmt == "json":
        source = tmp_path / "units.json"
        frame.to_json(source, orient="records", double_precision=15)
    elif fmt == "glob":
        frame.iloc[:100].to_parquet(tmp_path / "part-1.parquet")
        frame.iloc[100:].to_parquet(tmp_path / "part-2.parquet")
        source = str(tmp_path / "part-*.parquet")
    else:
        source = tmp_path / "shop.duckdb"
        with duckdb.connect(str(source)) as con:
            con.register("frame", frame)
            con.execute("CREATE TABLE events AS SELECT * FROM frame")
        options = {"table": "events"}
    moments = load_moments(source, segment="country", **options)
    pd.testing.assert_frame_equal(moments.table[["country", "arm", "n"]], reference.table[["country", "arm", "n"]])
    # JSON keeps 15 digits of each value; the other sources keep them all.
    rtol = 1e-13 if fmt == "json" else 1e-14
    np.testing.assert_allclose(moments.table[["mean", "m2"]], reference.table[["mean", "m2"]], rtol=rtol)
    if fmt != "json":
        assert moments.fingerprint == reference.fingerprint
    assert moments.input_rows == len(frame)


def test_duckdb_query_selects_the_rows(tmp_path, seed) -> None:
    frame = units_frame(seed, per_cell=20)
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE events AS SELECT * FROM frame")
    moments = load_moments(path, query="SELECT variant, revenue FROM events WHERE country = 'US'")
    expected = expected_table(frame[frame["country"] == "US"], ["variant"], "revenue").rename(
        columns={"variant": "arm"}
    )
    assert_moments_close(moments.table, expected, rtol=1e-12)


def test_a_string_column_of_numbers_is_read(tmp_path) -> None:
    path = write(tmp_path, "arm,value\nA,1.5\nA,2.5\nB, 3\nB,5\n")
    assert load_moments(path).table["mean"].tolist() == [2.0, 4.0]


# ----------------------------------------------------------------------------- bad input
UNITS_BAD = [
    ("arm,value\nA,1\nA,2\nB,abc\nB,4\n", {}, "row 3 of {path} has 'abc', which is not a number"),
    ("arm,value\nA,1\nA,2\nB,3\nB,nan\n", {}, "row 4 of {path} has nan (not a number)"),
    ("arm,value\nA,1\nA,inf\nB,3\nB,4\n", {}, "row 2 of {path} has inf (infinite)"),
    ("arm,value\nA,1\nA,-inf\nB,3\nB,4\n", {}, "row 2 of {path} has -inf (infinite)"),
    ("arm,value\nA,1\nA,\nB,3\nB,4\n", {}, "row 2 of {path} is empty"),
]


@pytest.mark.parametrize(("text", "kwargs", "problem"), UNITS_BAD)
def test_bad_values_name_their_row(tmp_path, text, kwargs, problem) -> None:
    path = write(tmp_path, text)
    message = (
        f"value column 'value' must hold a finite number per user, but {problem.format(path=path)}; fix or drop the row"
    )
    with pytest.raises(InvalidDataError, match="^" + re.escape(message) + "$"):
        load_moments(path, **kwargs)


BAD_INPUTS = [
    (
        "arm,value\nA,1\nA,2\nB,3\n",
        {},
        "cell 'B' has a single value in {path}; an arm needs at least 2 users to estimate its spread: add data, "
        "merge the cell with another, or drop it",
    ),
    ("arm,value\nA,1\n,2\nB,3\nB,4\n", {}, "arm column 'arm' is empty at row 2 of {path}; fill it in or drop the row"),
    (
        "arm,value\nA,1\nA,2\n",
        {},
        "column 'arm' in {path} has only one arm ('A'); an experiment needs at least two arms to compare",
    ),
    (
        "arm,value\nA,1\nA,2\nB,3\nB,4\n",
        {"control": "Z"},
        "control arm 'Z' is not in column 'arm'; arms are: 'A', 'B'",
    ),
    (
        "arm,revenue\nA,1\nA,2\nB,3\nB,4\n",
        {"value": "revenu"},
        "value column 'revenu' (given by --value) not found in {path}; did you mean 'revenue'? columns are: arm, "
        "revenue",
    ),
    (
        "arm,value\nA,1\nA,2\na ,3\na ,4\n",
        {},
        "column 'arm' in {path} has labels that differ only by spaces or case: 'A', 'a '; make them identical, "
        "or clearly different",
    ),
    (
        "arm,value\nA,true\nA,false\nB,true\nB,true\n",
        {},
        "value column 'value' in {path} holds true/false: a conversion, for the binary model "
        "(abpool.data.load_cells); cast it to 0/1 to analyse it as a mean",
    ),
    (
        "arm,clicks\nA,1\nB,2\n",
        {},
        "cannot tell the metric in {path}: pass --value COL for unit rows (one number per user), or --n COL with "
        "--mean COL and --sd COL (or --std-error COL, or --sum COL and --sum-sq COL) for statistics per cell; "
        "columns are: arm, clicks",
    ),
    (
        "arm,n,mean,sd\nA,1,2.0,1.0\nB,10,2.0,1.0\n",
        {},
        "cell 'A' has n = 1 at row 1 of {path}; an arm needs at least 2 users to estimate its spread: merge the "
        "cell with another or drop it",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,1.0\nB,0,2.0,1.0\n",
        {},
        "cell 'B' has n = 0 at row 2 of {path}; remove it or add its data",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,-1.0\nB,10,2.0,1.0\n",
        {},
        "sd column 'sd' has a negative value -1.0 at row 1 of {path}; a spread cannot be negative",
    ),
    (
        "arm,n,mean,se\nA,10,2.0,0.5\nB,10,2.0,-0.5\n",
        {},
        "std_error column 'se' has a negative value -0.5 at row 2 of {path}; a spread cannot be negative",
    ),
    ("arm,n,mean,sd\nA,-10,2.0,1.0\nB,10,2.0,1.0\n", {}, "n column 'n' has a negative count -10 at row 1 of {path}"),
    (
        "arm,n,mean,sd\nA,10.5,2.0,1.0\nB,10,2.0,1.0\n",
        {},
        "n column 'n' must hold whole numbers, but row 1 of {path} has 10.5",
    ),
    (
        "arm,n,mean,sd\nA,10,NaN,1.0\nB,10,2.0,1.0\n",
        {},
        "mean column 'mean' is empty or NaN at row 1 of {path}; every cell needs its mean",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,1.0\nB,10,2.0,\n",
        {},
        "sd column 'sd' is empty or NaN at row 2 of {path}; every cell needs its sd",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,1.0\nB,10,2.0,inf\n",
        {},
        "sd column 'sd' is infinite (inf) at row 2 of {path}; check it",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,1.0\nB,10,x,1.0\n",
        {},
        "mean column 'mean' must hold numbers, but row 2 of {path} has 'x'",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,1.0\nB,10,2.0,1.0\nA,12,2.5,1.0\n",
        {},
        "cell 'A' appears in more than one row of {path} (rows 1, 3); give each cell once (merge its statistics) "
        "or pass unit rows instead",
    ),
    (
        "arm,n,sum,sum_sq\nA,10,20.0,10.0\nB,10,20.0,50.0\n",
        {},
        "row 1 of {path} (cell 'A') has 'sum_sq' = 10 below 'sum'^2 / n = 40, which no data can give; check the "
        "two columns",
    ),
    (
        "arm,n,mean\nA,10,2.0\nB,10,2.0\n",
        {"mean": "mean"},
        "no sd column in {path}: name it with --sd (looked for sd, std, stddev, std_dev; columns are: arm, n, mean)",
    ),
    (
        "arm,n,mean,sd\nA,10,2.0,1.0\nB,10,2.0,1.0\n",
        {"sd": "stdev"},
        "sd column 'stdev' (given by --sd) not found in {path}; columns are: arm, n, mean, sd",
    ),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), BAD_INPUTS)
def test_bad_input_gives_one_line_error(tmp_path, text, kwargs, message) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidDataError, match="^" + re.escape(message.format(path=path)) + "$") as info:
        load_moments(path, **kwargs)
    assert "\n" not in str(info.value)


BAD_ARGUMENTS = [
    (
        {"cap": 0.99},
        "cap applies to unit rows (one value per user); sufficient statistics cannot be capped without their rows",
    ),
    (
        {"value": "mean", "n": "n"},
        "value (one number per user) and n/mean/sd/std_error/sum/sum_sq (statistics per cell) describe different "
        "forms; give one of them",
    ),
    ({"sd": "sd", "std_error": "se"}, "give the spread once: sd or std_error, not both"),
    ({"sum": "mean", "sd": "sd"}, "give either sum and sum_sq, or mean with sd or std_error, not a mix"),
    ({"sd": 3}, "sd must be a column name (a string), got 3"),
    ({"segment": "n"}, "segment column 'n' has the name of a column of the moments table; rename it in the source"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
def test_contradictory_options_are_refused(kwargs, message) -> None:
    stats = pd.DataFrame({"arm": ["A", "B"], "n": [10, 10], "mean": [1.0, 2.0], "sd": [1.0, 1.0], "se": [0.3, 0.3]})
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(message) + "$"):
        load_moments(stats, **kwargs)


# ----------------------------------------------------------------------------- warnings and provenance
def test_normal_approximation_warnings() -> None:
    skewed = [0.0] * 99 + [100.0]  # G1 = 10 exactly for this shape: 2,500 users needed, 100 given
    frame = pd.DataFrame(
        {
            "arm": ["flat"] * 40 + ["few"] * 10 + ["normal"] * 41 + ["skewed"] * 100,
            "value": [5.0] * 40 + list(range(10)) + [float(v) for v in range(-20, 21)] + skewed,
        }
    )
    g1 = scipy.stats.skew(skewed, bias=False)
    assert g1 == pytest.approx(10.0)
    assert normal_approximation_warnings(load_moments(frame)) == [
        "arm 'few' has 10 users, fewer than 30: too few to treat its standard error as known; read its interval "
        "with care or collect more data",
        "arm 'flat': all its 40 values are equal, so its standard error is 0 and its mean is taken as exact; "
        "check the metric",
        f"arm 'skewed' is skewed (skewness {g1:.3g}): its mean is close to normal from about "
        f"{math.floor(25 * g1**2) + 1:,} users (n > 25·skewness²) and it has 100; cap the metric (e.g. --cap 0.99) "
        "or collect more data",
    ]


def test_statistics_are_checked_for_size_only() -> None:
    stats = pd.DataFrame(
        {"segment": ["x", "x", "y", "y"], "arm": ["A", "B"] * 2, "n": [5, 500, 500, 500], "mean": 1.0, "sd": 1.0}
    )
    assert normal_approximation_warnings(load_moments(stats, segment="segment")) == [
        "cell 'x / A' has 5 users, fewer than 30: too few to treat its standard error as known; read its interval "
        "with care or collect more data"
    ]


def test_describe_and_passthrough(seed) -> None:
    frame = units_frame(seed, per_cell=30)
    moments = load_moments(frame, segment="country", cap=0.9)
    info = json.loads(json.dumps(moments.describe()))
    assert info["form"] == "units"
    assert info["value_column"] == "revenue"
    assert info["segment_columns"] == ["country"]
    assert info["cells"] == 6
    assert info["fingerprint"] == moments.fingerprint
    assert isinstance(moments, ArmMoments)
    assert load_moments(moments, control="A") is moments
    with pytest.raises(InvalidDataError, match=r"^control arm 'Z' is not in these moments; arms are: 'A', 'B', 'C'$"):
        load_moments(moments, control="Z")
    as_moments = moments.moments
    assert isinstance(as_moments, Moments)
    np.testing.assert_array_equal(as_moments.n, moments.table["n"].to_numpy(dtype=float))
    assert np.all(as_moments.standard_error() > 0)


def test_key_columns_may_take_any_name_but_the_tables() -> None:
    frame = pd.DataFrame(
        {"rows": ["x", "x", "y", "y"] * 2, "total": ["A", "B"] * 4, "value": [1.0, 2.0, 3.0, 4.0, 3.0, 6.0, 9.0, 12.0]}
    )
    table = load_moments(frame, arm="total", segment="rows", cap=0.9).table
    assert list(table.columns) == ["rows", "arm", "n", "mean", "m2", "skewness", "capped"]
    assert table["mean"].tolist()[:3] == [2.0, 4.0, 6.0]
