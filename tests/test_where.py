"""The ``--where`` language: the rows it keeps match Polars SQL on trusted text, and hostile or
malformed text is refused with one line, before anything is read."""

from __future__ import annotations

import datetime as dt
import sys
import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import llkl_db
from llkl_db.errors import BadValueError, LlklError
from llkl_db.where import MAX_DEPTH, MAX_LENGTH, parse_where, where_expr

SECRET = "TOPSECRET-7f3a9c-do-not-leak"


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return llkl_db.open().entries


@pytest.fixture(scope="module")
def odd() -> pl.DataFrame:
    """Strings with regex metacharacters, case and NULLs, for LIKE and IN."""
    return pl.DataFrame(
        {
            "name": [
                "a.c",
                "abc",
                "a+c",
                "aac",
                "A.C",
                "a.cc",
                "x(y)",
                "x[y]",
                "50%",
                "5_0",
                "a\nc",
                "a$c",
                "a\\c",
                None,
            ],
            "k": [1, 2, 3, None, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        }
    )


# (condition, reference SQL when it differs, which frame); every case must keep a proper subset
# of the rows, so that a condition parsed as "all" or "none" fails.
VALID = [
    ("layer = 5", None, "frame"),
    ("layer != 3", None, "frame"),  # NULL layers are dropped, as SQL does
    ("layer <> 5", None, "frame"),
    ("step == 64", None, "frame"),
    ("step >= 64 AND step < 512", None, "frame"),
    ("model_type = 'llama' OR model_type = 'gpt_neox' AND seed = 1", None, "frame"),  # AND before OR
    ("(model_type = 'llama' OR model_type = 'gpt_neox') AND seed = 1", None, "frame"),
    ("NOT model_type = 'llama' AND seed = 2", None, "frame"),  # comparison before NOT before AND
    ("seed = 1 AND step < 8 OR model_type = 'gemma3_text'", None, "frame"),  # (a AND b) OR c
    ("NOT (seed = 1 OR seed = 2)", None, "frame"),
    ("not seed = 1 or not seed = 2 and step > 100", None, "frame"),  # lower-case keywords
    ("layer IS NULL", None, "frame"),
    ("layer IS NOT NULL AND variant IS NULL", None, "frame"),
    ("NOT layer IS NULL", None, "frame"),
    ("seed IN (0, 2)", None, "frame"),
    ("seed NOT IN (0, 2)", None, "frame"),  # NULL seeds dropped
    ("seed IN (1, NULL)", None, "frame"),  # true or NULL, never false
    ("layer IN (1.5, 5, 10)", None, "frame"),
    ("model_type IN ('llama', 'gemma3_text')", None, "frame"),
    ("variant NOT IN ('q8_0', 'q4_0')", None, "frame"),
    ("model_id LIKE 'llkl-db/tiny-llama-0._m%'", None, "frame"),
    ("entry_id LIKE '%seed_@step1%'", None, "frame"),
    ("model_id NOT LIKE '%neox%'", None, "frame"),
    ("model_id ILIKE 'LLKL-DB/TINY-NEOX%'", None, "frame"),
    ("step BETWEEN 4 AND 64", None, "frame"),
    ("step NOT BETWEEN 4 AND 64", None, "frame"),
    ("n_params / 1e6 > 100", None, "frame"),
    ("n_params / 1E+6 < 0.5", None, "frame"),
    ("step * 2 - 1 >= 2 * 64 + -1", None, "frame"),  # * before -, unary minus
    ("-step < -100", None, "frame"),
    ("(step + 1) * 2 = 258", None, "frame"),
    ("lower(model_type) = 'llama' AND upper(variant) = 'Q8_0'", None, "frame"),
    ("length(model_id) < 30", None, "frame"),
    ("abs(step - 100) < 50", None, "frame"),
    ("coalesce(layer, -1) = -1", None, "frame"),
    ("coalesce(variant, base_model, 'plain') = 'plain'", None, "frame"),
    ("starts_with(model_id, 'google/') OR ends_with(entry_id, 'seed0@step8')", None, "frame"),
    ("contains(model_id, '.3m')", "strpos(model_id, '.3m') > 0", "frame"),
    ("\"model_id\" = 'google/gemma-3-270m'", None, "frame"),
    ("name LIKE 'a.c'", None, "odd"),  # '.' is literal
    ("name LIKE 'a+c'", None, "odd"),  # '+' is literal
    ("name LIKE 'a_c'", None, "odd"),  # '_' is one character, newline included
    ("name LIKE '%(%)'", None, "odd"),
    ("name LIKE 'x[y]' OR name LIKE '5_\\%' OR name LIKE 'a$c'", None, "odd"),
    ("name LIKE '%\\%%'", None, "odd"),
    ("name ILIKE 'A.C%'", None, "odd"),
    ("name IN ('a.c', 'x(y)', NULL)", None, "odd"),
    ("name NOT IN ('a.c', 'abc')", None, "odd"),
    ("k NOT IN (1, 2) AND name <> 'a+c'", None, "odd"),
]


@pytest.mark.parametrize(("text", "reference", "which"), VALID, ids=[case[0] for case in VALID])
def test_rows_match_polars_sql(request, text, reference, which):
    data = request.getfixturevalue(which)
    kept = data.filter(parse_where(text, data.schema))
    expected = data.filter(pl.sql_expr(reference or text))  # trusted text, for the reference only
    assert_frame_equal(kept, expected)
    assert 0 < kept.height < data.height, (text, kept.height)


def test_null_semantics_and_precedence_by_count(frame):
    """Counts worked out from the data, independently of Polars SQL."""
    layers = frame["layer"]
    assert frame.filter(parse_where("layer != 3", frame.schema)).height == int((layers.drop_nulls() != 3).sum())
    assert frame.filter(parse_where("NOT layer = 3", frame.schema)).height == int((layers.drop_nulls() != 3).sum())
    assert frame.filter(parse_where("layer = NULL", frame.schema)).height == 0
    assert frame.filter(parse_where("layer IN (NULL)", frame.schema)).height == 0
    assert frame.filter(parse_where("NULL", frame.schema)).height == 0
    assert frame.filter(parse_where("TRUE", frame.schema)).height == frame.height
    assert frame.filter(parse_where("seed NOT IN (1, NULL)", frame.schema)).height == 0
    # OR binds looser than AND: 'a OR b AND c' is 'a OR (b AND c)'
    a = frame["model_type"] == "llama"
    bc = (frame["model_type"] == "gpt_neox") & (frame["seed"] == 1)
    text = "model_type = 'llama' OR model_type = 'gpt_neox' AND seed = 1"
    assert frame.filter(parse_where(text, frame.schema)).height == int((a | bc.fill_null(False)).sum())


def test_string_compared_with_a_datetime_column_is_read_as_iso(frame):
    cut = dt.datetime(2026, 11, 28, 8, 30, tzinfo=dt.UTC)
    expected = frame.filter(pl.col("created_at") > cut)
    assert 0 < expected.height < frame.height
    for text in ("created_at > '2026-11-28 08:30:00'", "created_at > '2026-11-28T08:30:00+00:00'"):
        assert_frame_equal(frame.filter(parse_where(text, frame.schema)), expected)
    with pytest.raises(BadValueError, match="not an ISO"):
        parse_where("created_at > 'yesterday'", frame.schema)


def test_where_expr_passes_expressions_through_and_parses_strings(frame):
    expr = pl.col("layer") == 5
    assert where_expr(expr, frame.schema) is expr
    assert_frame_equal(frame.filter(where_expr("layer = 5", frame.schema)), frame.filter(expr))
    with pytest.raises(BadValueError) as excinfo:
        where_expr(5, frame.schema)  # type: ignore[arg-type]
    assert excinfo.value.param == "where"


def test_bad_value_error_shape():
    exc = BadValueError("where", "x = ", "unexpected end")
    assert isinstance(exc, LlklError)
    assert (exc.param, exc.value, exc.problem) == ("where", "x = ", "unexpected end")
    assert str(exc) == "where 'x = ': unexpected end"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("where") / "secret.env"
    path.write_text(f"{SECRET}\nsecond line\n")
    return path


def _hostile(path) -> list[tuple[str, str]]:
    """(condition, a word the message must hold)."""
    return [
        (f"entry_id IN (SELECT column_1 FROM read_csv('{path}'))", "literal values"),
        (f"entry_id IN (SELECT * FROM read_parquet('{path}'))", "literal values"),
        (f"entry_id IN (SELECT * FROM read_json('{path}'))", "literal values"),
        (f"read_csv('{path}') IS NULL", "unknown function 'read_csv'"),
        (f"EXISTS (SELECT 1 FROM read_csv('{path}'))", "unknown function 'EXISTS'"),
        (f"entry_id = (SELECT * FROM read_csv('{path}'))", "unexpected 'SELECT'"),
        ("entry_id IN (SELECT entry_id FROM self)", "literal values"),
        ("SELECT * FROM self", "unexpected 'SELECT'"),
        ("layer = 3 UNION SELECT 1", "unexpected 'UNION'"),
        ("layer = 3;", "';'"),
        ("1=1; DROP TABLE entries", "';'"),
        ("layer = 3 -- and the rest", "comments"),
        ("layer = 3 /* c */", "comments"),
        ("model_id = 'abc", "unterminated string"),
        ('"model_id = 1', "unterminated quoted column name"),
        ("modle_id = 'x'", "'model_id'"),
        ("read_text('x') = 'y'", "unknown function 'read_text'"),
        ("system('ls') = 0", "unknown function 'system'"),
        ("*", "unexpected '*'"),
        ("entry_id = *", "unexpected '*'"),
        ("", "empty"),
        ("   \n ", "empty"),
        ("(" * (MAX_DEPTH + 1) + "layer = 3" + ")" * (MAX_DEPTH + 1), "nested"),
        ("NOT " * (MAX_DEPTH + 1) + "layer = 3", "nested"),
        ("layer = " + "- " * (MAX_DEPTH + 1) + "3", "nested"),
        ("layer = --3", "comments"),
        ("layer = 3 OR " * 400 + "layer = 3", "longer than"),
        ("layer::int = 3", "casts"),
        ("layer = $1", "'$'"),
        ("`layer` = 3", "'`'"),
        ("layer = 3 layer", "unexpected 'layer'"),
        ("layer = 3 =", "unexpected '='"),
        ("layer = 3 = TRUE", "unexpected '='"),
        ("layer = NOT TRUE", "unexpected 'NOT'"),
        ("layer IN ()", "literal values"),
        ("layer IN (layer)", "literal values"),
        ("model_id LIKE model_id", "quoted pattern"),
        ("model_id = 1", "cannot compare text with a number"),
        ("model_id IN ('a', 1)", "cannot compare"),
        ("step", "not true/false"),
        ("step AND layer = 3", "AND needs true/false"),
        ("model_id + 1 > 2", "needs a number"),
        ("1e999 > 1", "out of range"),
        ("99999999999999999999 > 1", "out of range"),
        ("length(model_id, 2) > 1", "takes 1 arguments"),
        ("layer = 3 OR", "end of the condition"),
        ("CAST(layer AS VARCHAR) = '3'", "unknown function 'CAST'"),
        ("layer = 3 ESCAPE", "unexpected 'ESCAPE'"),
        ("12abc = 3", "malformed number"),
    ]


def test_hostile_and_malformed_conditions_are_refused(frame, secret_file):
    for text, needle in _hostile(secret_file):
        with pytest.raises(BadValueError) as excinfo:
            parse_where(text, frame.schema)
        exc = excinfo.value
        message = str(exc)
        assert exc.param == "where", text
        assert needle in exc.problem, (text, message)
        assert "\n" not in message, message
        assert SECRET not in message
        assert len(repr(exc.value)) <= 90, message  # at most ~80 characters of the user's text
        if len(text) > 100:
            assert text[:100] not in message


def test_the_attacks_are_real_against_polars_sql(frame, secret_file):
    """The reason for this module: Polars SQL reads the file and prints its first line."""
    with pytest.raises(pl.exceptions.PolarsError) as excinfo:
        frame.filter(pl.sql_expr(f"entry_id IN (SELECT column_1 FROM read_csv('{secret_file}'))"))
    assert SECRET in str(excinfo.value)


def test_parsing_reads_nothing_and_is_fast(frame, secret_file, monkeypatch):
    opened: list[str] = []
    watching = [True]

    def audit(event: str, args: tuple) -> None:
        if watching[0] and event in ("open", "os.listdir", "os.scandir", "socket.connect", "urllib.Request"):
            opened.append(f"{event} {args!r}")

    sys.addaudithook(audit)  # cannot be removed: switched off by the flag at the end

    def refuse(*args, **kwargs):
        raise AssertionError("the where parser called into Polars SQL or I/O")

    for name in ("sql", "sql_expr", "SQLContext", "read_csv", "scan_csv", "read_parquet", "scan_parquet", "read_json"):
        monkeypatch.setattr(pl, name, refuse)
    try:
        start = time.perf_counter()
        for text, _ in _hostile(secret_file):
            with pytest.raises(BadValueError):
                parse_where(text, frame.schema)
        for text, _, which in VALID:
            if which == "frame":
                parse_where(text, frame.schema)
        elapsed = time.perf_counter() - start
    finally:
        watching[0] = False
    assert opened == []
    assert elapsed < 1.0, elapsed


def test_nesting_up_to_the_limit_is_accepted(frame):
    deep = "(" * MAX_DEPTH + "layer = 5" + ")" * MAX_DEPTH
    assert_frame_equal(frame.filter(parse_where(deep, frame.schema)), frame.filter(pl.col("layer") == 5))
    nots = "NOT " * 2 + "layer = 5"
    assert_frame_equal(frame.filter(parse_where(nots, frame.schema)), frame.filter(pl.col("layer") == 5))
    long = ("layer = 5 OR " * 400)[: MAX_LENGTH - 20].rsplit(" OR ", 1)[0]
    assert len(long) <= MAX_LENGTH
    assert_frame_equal(frame.filter(parse_where(long, frame.schema)), frame.filter(pl.col("layer") == 5))


def test_messages_name_the_place_and_close_columns(frame):
    with pytest.raises(BadValueError) as excinfo:
        parse_where("layer = 3 AND SELECT", frame.schema)
    assert excinfo.value.problem.startswith("unexpected 'SELECT' at character 15; a filter admits columns")
    with pytest.raises(BadValueError) as excinfo:
        parse_where("n_param > 3", frame.schema)
    assert "unknown column 'n_param' at character 1" in excinfo.value.problem
    assert "'n_params'" in excinfo.value.problem
    assert str(excinfo.value).startswith("where 'n_param > 3': ")


def test_quoted_strings_and_names_escape_their_quotes():
    data = pl.DataFrame({'odd "name"': ["it's", "its", None]})
    kept = data.filter(parse_where('"odd ""name""" = \'it\'\'s\'', data.schema))
    assert kept.to_series().to_list() == ["it's"]
