"""Users' data is sacred: property tests over generated mixed-type CSV/TSV files for the one
reader and writer (rows out == rows in, observed and text cells unchanged, every hole filled:
a number in a numeric column, a whole number in an integer one, a level seen in the column
in a text one)."""

import csv
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gm_imputation import mixed, userdata

NA = ["", "NaN", "nan", "NA", "?", "null", " "]
number = st.one_of(
    st.integers(-10_000, 10_000).map(str),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-100, 100, allow_nan=False).map(lambda v: f" {v:.3f}"),  # spaces kept as text
    st.sampled_from(["1e3", "-0", "3.", ".5", "+2"]),
)
# never a number; no ';' because an unquoted ';' in a ','-file reads as a ';'-file with
# decimal commas, which the sniffer favours by design (a ',' is quoted by the writer)
text = st.text("abcxyz ,", min_size=1, max_size=6).map(lambda t: "t" + t)


@st.composite
def tables(draw):
    width = draw(st.integers(1, 5))
    kinds = draw(st.lists(st.sampled_from(["num", "num", "text"]), min_size=width, max_size=width))
    if "num" not in kinds:
        kinds[0] = "num"
    n = draw(st.integers(1, 8))
    rows = []
    for _ in range(n):
        empty_row = draw(st.integers(0, 5)) == 0  # pandas writes ",,," for these
        row = []
        for k in kinds:
            if empty_row or draw(st.integers(0, 3)) == 0:
                row.append("" if empty_row else draw(st.sampled_from(NA)))
            else:
                row.append(draw(number if k == "num" else text))
        rows.append(row)
    header = None
    if draw(st.booleans()):
        header = [f"col{j}" for j in range(width)]
        rows[0][kinds.index("num")] = draw(number)  # a header sits over some number
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    return header, rows, kinds, delimiter


def write(path, header, rows, delimiter):
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(rows)


def column(rows, c):
    return [r[c] for r in rows if not is_missing(r[c])]


def is_missing(cell):
    return cell.strip().lower() in userdata.NA_TOKENS


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=tables(), suffix=st.sampled_from([".csv", ".tsv"]))
@pytest.mark.slow  # 7 s (durations run, 1 thread, load 4-7)
def test_every_row_and_observed_cell_survives_a_round_trip(tmp_path, case, suffix):
    header, rows, kinds, delimiter = case
    if suffix == ".tsv":
        delimiter = "\t"
    src = tmp_path / f"in{suffix}"
    write(src, header, rows, delimiter)
    table = userdata.read_table(src)
    assert len(table.values) == len(rows)  # nothing dropped, all-empty rows included
    assert table.header == header
    numeric = [j for j, k in enumerate(kinds) if k == "num"]
    # a text column whose every cell is missing is indistinguishable from a numeric one;
    # a column of 0..n-1 or 1..n in order is a row index, left out
    assert set(numeric) - set(table.left_out_columns) <= set(table.columns)
    cols = table.schema.columns
    fill = []
    for i, row in enumerate(rows):
        for j, c in enumerate(table.columns):
            cell = row[c]
            if is_missing(cell):
                assert np.isnan(table.values[i, j])
            elif cols[j].kind == "category":  # a level seen in the column, as text
                assert cols[j].levels[int(table.values[i, j])] == cell.strip()
            else:
                assert table.values[i, j] == float(cell)
    for col in cols:  # the hole filler: a category's last level, or a number of the kind
        fill.append(len(col.levels) - 1 if col.kind == "category" else 7.25)
    if any(c.kind == "integer" for c in cols):
        fill = [7.0 if c.kind == "integer" else f for c, f in zip(cols, fill, strict=True)]
    filled = np.where(np.isnan(table.values), np.array(fill), table.values)
    for out_suffix in (".csv", suffix):
        out = tmp_path / f"out{out_suffix}"
        userdata.write_table(out, table, filled[None])
        text = out.read_text()
        sep = "\t" if out_suffix == ".tsv" else (delimiter if delimiter != "\t" else ",")
        got = list(csv.reader(io.StringIO(text), delimiter=sep))
        if header:
            assert got[0] == header
            got = got[1:]
        assert len(got) == len(rows)
        for row_in, row_out in zip(rows, got, strict=True):
            for c, (a, b) in enumerate(zip(row_in, row_out, strict=True)):
                if c in table.columns and is_missing(a):
                    col = cols[table.columns.index(c)]
                    if col.kind == "category":  # a text hole gets a level the column has
                        assert b == col.levels[-1] and b in {t.strip() for t in column(rows, c)}
                    elif col.kind == "integer":  # an integer column stays integer
                        assert b == "7"
                    else:
                        assert float(b) == 7.25
                else:
                    assert a == b  # the observed (or passed-through) text, unchanged
        assert not list(tmp_path.glob(".out*"))  # no temporary file left behind


def test_a_header_is_the_first_row_with_text_over_numbers(tmp_path):
    (tmp_path / "a.csv").write_text("x;y;name\n1,5;2;ann\n;3;bob\n")
    t = userdata.read_table(tmp_path / "a.csv")  # ';' sniffed; "1,5" is text: a category
    assert t.header == ["x", "y", "name"] and t.names == ["x", "y", "name"]
    assert [c.kind for c in t.schema.columns] == ["category", "integer", "category"]
    (tmp_path / "b.csv").write_text("1,2\n,3\n")
    assert userdata.read_table(tmp_path / "b.csv").header is None


def test_blank_lines_inside_are_empty_rows_and_at_the_end_are_dropped(tmp_path):
    (tmp_path / "a.csv").write_text("a,b\n1,2\n\n3,\n\n\n")
    t = userdata.read_table(tmp_path / "a.csv")
    assert t.values.shape == (3, 2) and np.isnan(t.values[1]).all()


def test_columns_are_matched_by_name(tmp_path):
    (tmp_path / "a.csv").write_text("c,note,a,b\n3,hi,1,\n6,yo,,5\n")
    t = userdata.read_table(tmp_path / "a.csv")
    real = lambda *names: mixed.Schema([mixed.Column(n, "real") for n in names])  # noqa: E731
    m = userdata.match_columns(t, real("a", "b", "c"), tmp_path / "a.csv", "run")
    assert m.names == ["a", "b", "c"]
    assert np.array_equal(m.values, [[1, np.nan, 3], [np.nan, 5, 6]], equal_nan=True)
    import pytest

    from gm.errors import GMError

    with pytest.raises(GMError, match="no column 'd'"):
        userdata.match_columns(t, real("a", "d", "c"), tmp_path / "a.csv", "run")
    with pytest.raises(GMError, match="'note' holds text"):
        userdata.match_columns(t, real("a", "note"), tmp_path / "a.csv", "run")
    # a category the run knows: its levels' codes; a level it never saw: one clear line
    known = mixed.Schema([mixed.Column("note", "category", ["hi", "yo", "zz"])])
    assert userdata.match_columns(t, known, tmp_path / "a.csv", "run").values.tolist() == [[0], [1]]
    other = mixed.Schema([mixed.Column("note", "category", ["hi"])])
    with pytest.raises(GMError, match="'yo', a value the run never saw"):
        userdata.match_columns(t, other, tmp_path / "a.csv", "run")
