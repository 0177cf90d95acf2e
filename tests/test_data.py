"""The data contract: forms, formats and one clear error per kind of bad input."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from abpool.data import load_cells
from abpool.datasets import make_dataframe
from abpool.errors import InvalidArgumentError, InvalidDataError

CELLS = "variant,trials,successes\nA,100,30\nB,100,50\nC,100,55\nD,100,60\n"


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_article_csv_needs_no_flags(tmp_path) -> None:
    cells = load_cells(write(tmp_path, CELLS))
    assert cells.arms == ("A", "B", "C", "D")
    assert cells.table["successes"].tolist() == [30, 50, 55, 60]
    assert cells.form == "cells"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "json", "jsonl", "dataframe"])
def test_every_format_gives_the_same_cells(tmp_path, fmt) -> None:
    frame = make_dataframe(20, [6, 10, 11, 12])
    if fmt == "dataframe":
        source = frame
    else:
        source = tmp_path / f"units.{fmt}"
        if fmt == "csv":
            frame.to_csv(source, index=False)
        elif fmt == "tsv":
            frame.to_csv(source, index=False, sep="\t")
        elif fmt == "parquet":
            frame.to_parquet(source)
        elif fmt == "json":
            frame.to_json(source, orient="records")
        else:
            frame.to_json(source, orient="records", lines=True)
    cells = load_cells(source, segment="country", arm="treated", outcome="success")
    expected = pd.DataFrame(
        {
            "country": ["Canada", "Canada", "China", "China"],
            "arm": ["0", "1", "0", "1"],
            "trials": [20] * 4,
            "successes": [6, 10, 11, 12],
        }
    )
    pd.testing.assert_frame_equal(cells.table, expected, check_dtype=False)
    assert cells.form == "units"


def test_unit_rows_and_cells_share_a_fingerprint(tmp_path) -> None:
    units = pd.DataFrame({"variant": ["A"] * 3 + ["B"] * 2, "outcome": [1, 0, 0, True, False]})
    units["outcome"] = units["outcome"].astype(int)
    cells = pd.DataFrame({"variant": ["A", "B"], "trials": [3, 2], "successes": [1, 1]})
    assert load_cells(units).fingerprint == load_cells(cells).fingerprint


@pytest.mark.parametrize(
    "values", [["true", "false", "TRUE", "False"], [True, False, True, False], [1.0, 0.0, 1.0, 0.0]]
)
def test_boolean_outcomes_in_any_spelling(values) -> None:
    frame = pd.DataFrame({"arm": ["A", "A", "B", "B"], "converted": values})
    assert load_cells(frame).table["successes"].tolist() == [1, 1]


def test_multiple_segment_columns_combine() -> None:
    frame = pd.DataFrame(
        {
            "country": ["CA", "CA", "CA", "CA"],
            "platform": ["ios", "ios", "web", "web"],
            "arm": ["c", "t", "c", "t"],
            "trials": [10, 10, 10, 10],
            "successes": [1, 2, 3, 4],
        }
    )
    cells = load_cells(frame, segment=["country", "platform"])
    assert cells.segment_columns == ("country", "platform")
    assert len(cells.table) == 4


def test_large_unit_file_is_aggregated_in_duckdb(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 300_000
    arms = rng.integers(0, 3, size=n)
    outcome = rng.random(n) < np.array([0.1, 0.12, 0.11])[arms]
    path = tmp_path / "big.parquet"
    pd.DataFrame({"variant": np.array(["A", "B", "C"])[arms], "converted": outcome}).to_parquet(path)
    cells = load_cells(path)
    assert cells.table["trials"].sum() == n
    assert cells.table["successes"].sum() == outcome.sum()


# ----------------------------------------------------------------------------- bad input
BAD_INPUTS = [
    ("variant,trials,successes\nA,100,30\nB,100,150\n", {}, "row 2 .* more successes \\(150\\) than trials \\(100\\)"),
    ("variant,trials,successes\nA,100,30\nB,-5,0\n", {}, "trials column 'trials' has a negative count -5 at row 2"),
    ("variant,trials,successes\nA,100,30\nB,100,-1\n", {}, "successes column 'successes' has a negative count -1"),
    ("variant,trials,successes\nA,100,30\nB,10.5,3\n", {}, "must hold whole numbers, but row 2 .* has 10.5"),
    ("variant,trials,successes\nA,100,30\nB,abc,3\n", {}, "must hold whole numbers, but row 2 .* has 'abc'"),
    ("variant,trials,successes\nA,100,30\nB,,3\n", {}, "trials column 'trials' is empty or NaN at row 2"),
    ("variant,trials,successes\nA,100,30\nB,100,NaN\n", {}, "successes column 'successes' is empty or NaN at row 2"),
    ("variant,trials,successes\nA,100,30\nA,100,31\n", {}, "cell 'A' appears in more than one row .*rows 1, 2"),
    ("variant,trials,successes\nA,100,30\n", {}, "only one arm \\('A'\\)"),
    ("variant,trials,successes\nA,100,30\nB,0,0\n", {}, "cell 'B' has 0 trials"),
    ("variant,trials,successes\nA,100,30\n,100,31\n", {}, "arm column 'variant' is empty at row 2"),
    ("variant,trails,successes\nA,100,30\nB,100,31\n", {}, "no trials column .*columns are: variant, trails"),
    (
        "variant,trials,successes\nA,100,30\nB,100,31\n",
        {"trials": "trails"},
        "trials column 'trails' \\(given by --trials\\) not found .*did you mean 'trials'",
    ),
    ("variant,trials,successes\nA,100,30\nB,100,31\n", {"arm": "varient"}, "did you mean 'variant'"),
    (
        "variant,trials,successes\nA,100,30\nB,100,31\n",
        {"control": "Z"},
        "control arm 'Z' is not in column 'variant'; arms are: 'A', 'B'",
    ),
    ("arm,converted\nA,1\nB,2\n", {}, "outcome column 'converted' must be 0/1 or true/false, but row 2 .* has '2'"),
    ("arm,converted\nA,1\nB,yes\n", {}, "row 2 .* has 'yes'"),
    ("arm,converted\nA,1\nB,\n", {}, "row 2 .* has an empty value"),
    ("arm,converted\nA,1\nB,0.5\n", {}, "row 2 .* has '0.5'"),
    ("x,y\n1,2\n3,4\n", {}, "no arm column .* --arm"),
    ("variant,clicks\nA,1\nB,2\n", {}, "cannot tell the outcome .*--outcome"),
    ("variant,trials,successes\n", {}, "header but no data rows"),
    ("", {}, "the file is empty"),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), BAD_INPUTS)
def test_bad_input_gives_one_line_error(tmp_path, text, kwargs, message) -> None:
    with pytest.raises(InvalidDataError, match=message) as info:
        load_cells(write(tmp_path, text), **kwargs)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(InvalidDataError, match="no such file"):
        load_cells(tmp_path / "nope.csv")


def test_directory_and_unknown_extension(tmp_path) -> None:
    with pytest.raises(InvalidDataError, match="is a directory"):
        load_cells(tmp_path)
    with pytest.raises(InvalidDataError, match=r"unknown file type '\.xlsx'"):
        load_cells(write(tmp_path, CELLS, "data.xlsx"))


def test_corrupt_parquet(tmp_path) -> None:
    with pytest.raises(InvalidDataError, match="cannot be read as PARQUET"):
        load_cells(write(tmp_path, "not parquet at all", "data.parquet"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path) -> None:  # pragma: no cover - CI runs as root
    path = write(tmp_path, CELLS)
    path.chmod(0)
    with pytest.raises(InvalidDataError, match="cannot be read"):
        load_cells(path)


def test_dataframe_inputs_are_not_modified() -> None:
    frame = pd.DataFrame({"variant": ["A", "B"], "trials": [10, 10], "successes": [1, 2]}, index=[5, 9])
    before = frame.copy()
    load_cells(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_nan_in_dataframe_counts() -> None:
    frame = pd.DataFrame({"variant": ["A", "B"], "trials": [10, np.nan], "successes": [1, 2]})
    with pytest.raises(InvalidDataError, match="empty or NaN at row 2"):
        load_cells(frame)


def test_arm_cannot_also_be_a_segment() -> None:
    frame = pd.DataFrame({"variant": ["A", "B"], "trials": [10, 10], "successes": [1, 2]})
    with pytest.raises(InvalidArgumentError, match="both the arm and a segment"):
        load_cells(frame, segment="variant")


def test_not_a_data_source() -> None:
    with pytest.raises(InvalidArgumentError, match="got list"):
        load_cells([1, 2, 3])


def _units(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "country": rng.choice(["CA", "US", "MX"], rows),
            "variant": rng.choice(["B2", "B10", "A"], rows),
            "converted": rng.integers(0, 2, rows),
        }
    )


def test_unit_rows_in_any_order_give_the_same_cells(tmp_path, rng) -> None:
    units = _units(rng, 5_000)
    shuffled = units.sample(frac=1.0, random_state=int(rng.integers(2**31)))
    units.to_parquet(tmp_path / "a.parquet")
    shuffled.to_csv(tmp_path / "b.csv", index=False)
    first = load_cells(tmp_path / "a.parquet", segment="country")
    second = load_cells(tmp_path / "b.csv", segment="country")
    pd.testing.assert_frame_equal(first.table, second.table)
    assert first.fingerprint == second.fingerprint
    # Sorted, digits as numbers: B2 before B10; whatever order the users came in.
    assert first.table[["country", "arm"]].drop_duplicates()["arm"].tolist()[:3] == ["A", "B2", "B10"]
    assert first.table["country"].tolist()[::3] == ["CA", "MX", "US"]
    expected = units.groupby(["country", "variant"])["converted"].agg(["size", "sum"])
    for row in first.table.itertuples(index=False):
        assert (row.trials, row.successes) == tuple(expected.loc[(row.country, row.arm)])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("converted", 2, "outcome column 'converted' must be 0/1 or true/false, but row {row} of"),
        ("converted", -1, "outcome column 'converted' must be 0/1 or true/false, but row {row} of"),
        ("converted", None, "outcome column 'converted' must be 0/1 or true/false, but row {row} of"),
        ("variant", None, "arm column 'variant' is empty at row {row} of"),
        ("country", None, "segment column 'country' is empty at row {row} of"),
    ],
)
def test_the_streaming_pass_still_names_the_first_bad_row(tmp_path, rng, column, value, message) -> None:
    units = _units(rng, 20_000)
    row = int(rng.integers(10_000, 20_000))
    units[column] = units[column].astype(object)
    units.loc[row - 1, column] = value  # row numbers count from 1
    units.loc[19_999, column] = value  # a later bad row is not the one named
    units.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InvalidDataError) as caught:
        load_cells(tmp_path / "bad.parquet", segment="country")
    assert message.format(row=row) in str(caught.value)


def test_fractional_and_nan_outcomes_in_a_float_column(tmp_path) -> None:
    # pandas' NaN reaches DuckDB as a missing value.
    for value, shown in ((0.5, "'0.5'"), (float("nan"), "an empty value")):
        frame = pd.DataFrame({"variant": ["A", "B", "A", "B"], "converted": [0.0, 1.0, value, 1.0]})
        with pytest.raises(InvalidDataError, match=rf"row 3 of DataFrame has {shown}"):
            load_cells(frame)


def test_a_duckdb_database_table_or_query(tmp_path, rng) -> None:
    import duckdb

    units = _units(rng, 3_000)
    units.to_parquet(tmp_path / "units.parquet")
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{tmp_path / 'units.parquet'}')")
    expected = load_cells(tmp_path / "units.parquet", segment="country")
    from_table = load_cells(database, table="events", segment="country")
    pd.testing.assert_frame_equal(from_table.table, expected.table)
    assert from_table.fingerprint == expected.fingerprint and from_table.source.endswith("(table 'events')")
    only_us = load_cells(database, query="SELECT variant, converted FROM events WHERE country = 'US';")
    assert only_us.table["trials"].sum() == (units["country"] == "US").sum()
    for kwargs, message in (
        ({}, "is a DuckDB database: name its table (--table NAME) or give a query (--query SQL)"),
        ({"table": "nope"}, "(table 'nope') cannot be read (Catalog Error"),
        ({"query": "SELEC 1"}, "(the query) cannot be read (Parser Error"),
    ):
        with pytest.raises((InvalidDataError, InvalidArgumentError)) as caught:
            load_cells(database, **kwargs)
        assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(InvalidArgumentError, match="table and query apply to a DuckDB database file"):
        load_cells(tmp_path / "units.parquet", table="events")


def test_reads_sharing_one_duckdb_instance_keep_to_themselves_and_let_the_database_file_go(tmp_path, rng) -> None:
    # Inside one_database (a batch's reads) every read connects to one DuckDB instance: a database file each read
    # attaches must not clash with another read's, a bad read must not spoil the next, and once the block ends the
    # file is free again (a batch writes its results table into it read-write).
    import duckdb

    from abpool.data.local import _SHARED, one_database

    units = _units(rng, 2_000)
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.register("units", units)
        con.execute("CREATE TABLE events AS SELECT * FROM units")
    expected = load_cells(units, segment="country")
    with one_database():
        for _ in range(2):
            pd.testing.assert_frame_equal(load_cells(database, table="events", segment="country").table, expected.table)
        with pytest.raises(InvalidDataError, match="table 'nope'"):
            load_cells(database, table="nope")
        pd.testing.assert_frame_equal(load_cells(units, segment="country").table, expected.table)
        query = "SELECT * FROM events WHERE country = 'US'"
        assert load_cells(database, query=query).table["trials"].sum() == (units["country"] == "US").sum()
        # Each read detached its file: a batch of a thousand reads holds none of them open.
        attached = _SHARED.database.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        assert not [name for (name,) in attached if name.startswith("abpool_db")]
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE results AS SELECT 1 AS x")
        assert con.execute("SELECT count(*) FROM results").fetchone() == (1,)


@pytest.mark.parametrize("name", ["arm", "trials", "successes", "Trials"])
def test_a_segment_named_like_a_cells_column_is_refused_in_one_line(name):
    frame = pd.DataFrame({"variant": ["A", "B", "A", "B"], name: ["x", "x", "y", "y"], "converted": [1, 0, 1, 1]})
    with pytest.raises(InvalidArgumentError, match=f"segment column '{name}' has a name abpool's cells use"):
        load_cells(frame, arm="variant", segment=name, outcome="converted")


@pytest.mark.parametrize("name", ["bad", "__abpool_n", "n"])
def test_a_segment_may_share_a_name_with_abpools_internal_sql(name):
    frame = pd.DataFrame({"variant": ["A", "B", "A", "B"], name: ["x", "x", "y", "y"], "converted": [1, 0, 1, 1]})
    cells = load_cells(frame, arm="variant", segment=name, outcome="converted")
    assert cells.table[[name, "arm", "trials", "successes"]].values.tolist() == [
        ["x", "A", 1, 1], ["x", "B", 1, 0], ["y", "A", 1, 1], ["y", "B", 1, 1],
    ]  # fmt: skip
