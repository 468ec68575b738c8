"""A safe ``--where`` filter language: a small SQL subset turned into a Polars expression.

The text is tokenized and parsed here, by hand, and the expression is built from ``pl.col``,
``pl.lit`` and expression methods; it never reaches Polars' SQL engine, whose table functions
(``read_csv``, ``read_parquet``, ...) and subqueries read files and URLs. What is admitted::

    condition  := disjunct ( OR disjunct )*
    disjunct   := negation ( AND negation )*
    negation   := NOT negation | predicate
    predicate  := sum [ compare_op sum
                      | [NOT] IN "(" literal ( "," literal )* ")"
                      | [NOT] ( LIKE | ILIKE ) string
                      | [NOT] BETWEEN sum AND sum
                      | IS [NOT] NULL ]
    sum        := product ( ( "+" | "-" ) product )*
    product    := unary ( ( "*" | "/" ) unary )*
    unary      := "-" unary | literal | column | function "(" [ condition ( "," condition )* ] ")"
                | "(" condition ")"
    compare_op := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := 'string' (with '' for a quote) | integer | decimal [ e exponent ] | TRUE | FALSE | NULL
    column     := identifier | "double-quoted identifier"
    function   := lower | upper | length | abs | coalesce | starts_with | ends_with | contains

Keywords and function names are case-insensitive; column names are not. NULL follows SQL:
a comparison with NULL is NULL, and ``filter`` keeps only the rows where the condition is true.
A string compared with a date/time column is read as an ISO date/time.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

from llkl_db.errors import BadValueError

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "parse_where", "where_expr"]

MAX_LENGTH = 4000
"""The longest condition accepted, in characters."""
MAX_DEPTH = 100
"""The deepest nesting of parentheses, NOT, unary minus and function calls accepted."""

_SHOWN = 80  # at most this much of the user's text is echoed in a message
_HELP = (
    "a filter admits columns, literals, comparisons, AND/OR/NOT, IN (...), LIKE, IS NULL, BETWEEN"
    " and lower/upper/length/abs/coalesce/starts_with/ends_with/contains"
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "BETWEEN", "TRUE", "FALSE"})
# SQL words that are no column here: named as unexpected rather than as unknown columns.
_SQL_WORDS = frozenset(
    "SELECT FROM WHERE WITH UNION INTERSECT EXCEPT JOIN ON AS EXISTS CASE WHEN THEN ELSE END CAST ORDER GROUP BY"
    " HAVING LIMIT OFFSET INTO VALUES TABLE DROP INSERT UPDATE DELETE CREATE ALTER ALL ANY SOME DISTINCT ESCAPE".split()
)
_COMPARE = frozenset({"=", "==", "!=", "<>", "<", "<=", ">", ">="})
_OPERATORS = ("<=", ">=", "<>", "!=", "==", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")  # what Rust's regex::escape escapes
_INT64_MAX = 2**63 - 1

# Precedence levels of the binary operators (higher binds tighter); NOT sits between AND and predicates.
_OR, _AND, _NOT, _PREDICATE, _SUM, _PRODUCT, _UNARY = 1, 2, 3, 4, 5, 6, 7


def where_expr(where: str | pl.Expr, columns: Mapping[str, pl.DataType]) -> pl.Expr:
    """The filter expression for ``where``: a Polars expression unchanged, a string parsed by :func:`parse_where`."""
    if isinstance(where, pl.Expr):
        return where
    if isinstance(where, str):
        return parse_where(where, columns)
    raise BadValueError("where", type(where).__name__, "is neither a condition string nor a Polars expression")


def parse_where(text: str, columns: Mapping[str, pl.DataType]) -> pl.Expr:
    """The Polars expression for a SQL-like condition over ``columns`` (name -> dtype).

    Raises :class:`~llkl_db.errors.BadValueError` (param ``"where"``) naming where the text
    could not be parsed, an unknown column or function, or an obvious type mismatch. Type
    errors that only show at evaluation time surface as Polars errors when the filter runs.
    """
    return _Parser(text, columns).parse()


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "string", "name", "quoted", "op", "end"
    text: str  # the source text of the token
    pos: int  # 0-based offset in the condition
    value: object = None  # int/float for numbers, str for strings and quoted names


@dataclass(frozen=True)
class _Node:
    expr: pl.Expr
    kind: str  # "text", "number", "boolean", "time", "null" or "other" (not checked)
    pos: int
    dtype: pl.DataType | None = None
    literal: bool = False
    value: object = None


def _kind_of(dtype: pl.DataType | None) -> str:
    if dtype is None:
        return "other"
    if dtype == pl.String:
        return "text"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Null:
        return "null"
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "time"
    return "other"


_KIND_WORDS = {
    "text": "text",
    "number": "a number",
    "boolean": "true/false",
    "time": "a date/time",
    "null": "NULL",
    "other": "a value",
}


def _show(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Parser:
    def __init__(self, text: str, columns: Mapping[str, pl.DataType]) -> None:
        self.text = text
        if hasattr(columns, "items"):
            self.columns: dict[str, pl.DataType | None] = dict(columns.items())
        else:
            self.columns = dict.fromkeys(columns)
        self.tokens: list[_Token] = []
        self.index = 0
        self.depth = 0

    # -- errors -------------------------------------------------------------------------------

    def fail(self, problem: str) -> BadValueError:
        return BadValueError("where", _show(self.text, _SHOWN), problem)

    def unexpected(self, token: _Token) -> BadValueError:
        if token.kind == "end":
            return self.fail(f"unexpected end of the condition at character {token.pos + 1}; {_HELP}")
        return self.fail(f"unexpected {_show(token.text, 30)!r} at character {token.pos + 1}; {_HELP}")

    # -- tokens -------------------------------------------------------------------------------

    def tokenize(self) -> list[_Token]:
        text, tokens, i, n = self.text, [], 0, len(self.text)
        while i < n:
            ch = text[i]
            if ch.isspace():
                i += 1
            elif text.startswith(("--", "/*"), i):
                raise self.fail(f"comments ({text[i : i + 2]!r}) are not admitted, at character {i + 1}")
            elif text.startswith("::", i):
                raise self.fail(f"casts ('::') are not admitted, at character {i + 1}; {_HELP}")
            elif ch in "'\"":
                j, parts = i + 1, []
                while True:
                    end = text.find(ch, j)
                    if end < 0:
                        what = "string" if ch == "'" else "quoted column name"
                        raise self.fail(f"unterminated {what} starting at character {i + 1}")
                    parts.append(text[j:end])
                    if text.startswith(ch * 2, end):
                        parts.append(ch)
                        j = end + 2
                        continue
                    break
                value = "".join(parts)
                if ch == '"' and not value:
                    raise self.fail(f'empty quoted column name "" at character {i + 1}')
                tokens.append(_Token("string" if ch == "'" else "quoted", text[i : end + 1], i, value))
                i = end + 1
            elif ch.isdigit() or (ch == "." and text[i + 1 : i + 2].isdigit()):
                match = _NUMBER.match(text, i)
                assert match is not None
                j = match.end()
                if j < n and (text[j].isalnum() or text[j] in "_."):
                    raise self.fail(f"malformed number {_show(text[i : j + 1], 30)!r} at character {i + 1}")
                tokens.append(_Token("number", match.group(), i, self.number(match.group(), i)))
                i = j
            elif ch.isascii() and (ch.isalpha() or ch == "_"):
                match = _IDENTIFIER.match(text, i)
                assert match is not None
                tokens.append(_Token("name", match.group(), i))
                i = match.end()
            else:
                op = next((op for op in _OPERATORS if text.startswith(op, i)), None)
                if op is None:
                    raise self.fail(f"unexpected character {ch!r} at character {i + 1}; {_HELP}")
                tokens.append(_Token("op", op, i))
                i += len(op)
        tokens.append(_Token("end", "", n))
        return tokens

    def number(self, text: str, pos: int) -> int | float:
        if re.fullmatch(r"\d+", text):
            value = int(text)
            if value > _INT64_MAX:
                raise self.fail(f"integer {_show(text, 30)} at character {pos + 1} is out of range")
            return value
        value = float(text)
        if not math.isfinite(value):
            raise self.fail(f"number {_show(text, 30)} at character {pos + 1} is out of range")
        return value

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def keyword(self, token: _Token) -> str | None:
        """The upper-cased keyword a bare name token is, or None."""
        if token.kind == "name" and token.text.upper() in _KEYWORDS:
            return token.text.upper()
        return None

    def is_op(self, token: _Token, *ops: str) -> bool:
        return token.kind == "op" and token.text in ops

    def expect_op(self, op: str) -> _Token:
        token = self.peek()
        if not self.is_op(token, op):
            raise self.unexpected(token)
        return self.advance()

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} deep at character {token.pos + 1}")

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> pl.Expr:
        if len(self.text) > MAX_LENGTH:
            raise self.fail(f"{len(self.text):,} characters, longer than the {MAX_LENGTH:,} admitted")
        if not self.text.strip():
            raise self.fail(f"empty condition; {_HELP}")
        self.tokens = self.tokenize()
        node = self.expression(_OR)
        if self.peek().kind != "end":
            raise self.unexpected(self.peek())
        if node.kind not in ("boolean", "null", "other"):
            raise self.fail(f"the condition is {_KIND_WORDS[node.kind]}, not true/false; compare it, e.g. 'layer = 3'")
        return node.expr.cast(pl.Boolean) if node.kind == "null" else node.expr

    def expression(self, min_level: int) -> _Node:
        left = self.prefix(min_level)
        compared = False
        while True:
            token = self.peek()
            word = self.keyword(token)
            if word == "OR" and min_level <= _OR:
                self.advance()
                left = self.logical(left, "OR", self.expression(_AND), lambda a, b: a | b)
            elif word == "AND" and min_level <= _AND:
                self.advance()
                left = self.logical(left, "AND", self.expression(_NOT), lambda a, b: a & b)
            elif min_level <= _PREDICATE and self.at_predicate():
                if compared:  # comparisons do not chain: 'a = b = c' is an error, as in SQL
                    raise self.unexpected(token)
                left = self.predicate(left)
                compared = True
            elif self.is_op(token, "+", "-") and min_level <= _SUM:
                self.advance()
                op = (lambda a, b: a + b) if token.text == "+" else (lambda a, b: a - b)
                left = self.arithmetic(left, token, self.expression(_PRODUCT), op)
            elif self.is_op(token, "*", "/") and min_level <= _PRODUCT:
                self.advance()
                op = (lambda a, b: a * b) if token.text == "*" else (lambda a, b: a / b)
                left = self.arithmetic(left, token, self.expression(_UNARY), op)
            else:
                return left

    def at_predicate(self) -> bool:
        token = self.peek()
        if self.is_op(token, *_COMPARE):
            return True
        word = self.keyword(token)
        if word in ("IN", "LIKE", "ILIKE", "BETWEEN", "IS"):
            return True
        return word == "NOT" and self.keyword(self.peek(1)) in ("IN", "LIKE", "ILIKE", "BETWEEN")

    def prefix(self, min_level: int) -> _Node:
        token = self.peek()
        if self.keyword(token) == "NOT":
            if min_level > _NOT:  # 'a = NOT b' is an error, as in SQL
                raise self.unexpected(token)
            self.advance()
            self.enter(token)
            operand = self.expression(_NOT)
            self.depth -= 1
            self.need(operand, ("boolean",), "NOT")
            return _Node(operand.expr.not_(), "boolean", token.pos)
        if self.is_op(token, "-"):
            self.advance()
            self.enter(token)
            operand = self.prefix(_UNARY)
            self.depth -= 1
            self.need(operand, ("number",), "unary '-'")
            if operand.literal and operand.value is not None:
                return self.literal(-operand.value, token.pos)  # type: ignore[operator]
            return _Node(-operand.expr, operand.kind, token.pos, operand.dtype)
        return self.primary()

    def primary(self) -> _Node:
        token = self.advance()
        if token.kind == "number":
            return self.literal(token.value, token.pos)
        if token.kind == "string":
            return self.literal(token.value, token.pos)
        if token.kind == "quoted":
            return self.column(str(token.value), token)
        if self.is_op(token, "("):
            self.enter(token)
            node = self.expression(_OR)
            self.expect_op(")")
            self.depth -= 1
            return node
        if token.kind == "name":
            word = self.keyword(token)
            if word in ("TRUE", "FALSE"):
                return self.literal(word == "TRUE", token.pos)
            if word == "NULL":
                return self.literal(None, token.pos)
            if word is not None:
                raise self.unexpected(token)
            if self.is_op(self.peek(), "("):
                return self.function(token)
            if token.text.upper() in _SQL_WORDS and token.text not in self.columns:
                raise self.unexpected(token)
            return self.column(token.text, token)
        raise self.unexpected(token)

    def literal(self, value: object, pos: int) -> _Node:
        if value is None:
            return _Node(pl.lit(None), "null", pos, pl.Null(), True, None)
        if isinstance(value, bool):
            return _Node(pl.lit(value), "boolean", pos, pl.Boolean(), True, value)
        if isinstance(value, str):
            return _Node(pl.lit(value), "text", pos, pl.String(), True, value)
        if isinstance(value, int) and not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            raise self.fail(f"integer at character {pos + 1} is out of range")
        return _Node(pl.lit(value), "number", pos, None, True, value)

    def column(self, name: str, token: _Token) -> _Node:
        if name not in self.columns:
            close = difflib.get_close_matches(name.lower(), [c.lower() for c in self.columns], n=4, cutoff=0.6)
            lowered = {c.lower(): c for c in self.columns}
            if close:
                hint = "did you mean " + ", ".join(repr(lowered[c]) for c in close) + "?"
            else:
                hint = "columns: " + _show(", ".join(self.columns), 200)
            raise self.fail(f"unknown column {_show(name, 30)!r} at character {token.pos + 1}; {hint}")
        dtype = self.columns[name]
        return _Node(pl.col(name), _kind_of(dtype), token.pos, dtype)

    # -- type checks --------------------------------------------------------------------------

    def need(self, node: _Node, kinds: tuple[str, ...], what: str) -> None:
        if node.kind not in (*kinds, "null", "other"):
            wanted = " or ".join(_KIND_WORDS[k] for k in kinds)
            raise self.fail(f"{what} needs {wanted}, got {_KIND_WORDS[node.kind]} at character {node.pos + 1}")

    def comparable(self, left: _Node, right: _Node, what: str) -> _Node:
        """``right``, made comparable with ``left`` (an ISO string against a date/time), or an error."""
        if left.kind in ("null", "other") or right.kind in ("null", "other") or left.kind == right.kind:
            return right
        if left.kind == "time" and right.kind == "text" and right.literal:
            return self.timestamp(right, left.dtype)
        raise self.fail(
            f"{what} cannot compare {_KIND_WORDS[left.kind]} with {_KIND_WORDS[right.kind]}"
            f" at character {right.pos + 1}"
        )

    def compare_pair(self, left: _Node, right: _Node, what: str) -> tuple[_Node, _Node]:
        if right.kind == "time" and left.kind == "text":
            return self.comparable(right, left, what), right
        return left, self.comparable(left, right, what)

    def timestamp(self, node: _Node, dtype: pl.DataType | None) -> _Node:
        text = str(node.value)
        try:
            if isinstance(dtype, pl.Datetime):
                value: object = dt.datetime.fromisoformat(text)
                zone = dtype.time_zone
                if zone is not None and value.tzinfo is None:  # type: ignore[union-attr]
                    value = value.replace(tzinfo=ZoneInfo(zone))  # type: ignore[union-attr]
                elif zone is None and value.tzinfo is not None:  # type: ignore[union-attr]
                    raise ValueError("a time zone for a column without one")
            elif isinstance(dtype, pl.Date):
                value = dt.date.fromisoformat(text)
            elif isinstance(dtype, pl.Time):
                value = dt.time.fromisoformat(text)
            else:
                raise ValueError("not a date, time or datetime column")
            expr = pl.lit(value).cast(dtype)
        except (ValueError, pl.exceptions.PolarsError):
            raise self.fail(
                f"{_show(text, 30)!r} at character {node.pos + 1} is not an ISO {_show(str(dtype), 30)}"
            ) from None
        return _Node(expr, "time", node.pos, dtype, True, value)

    # -- operators ----------------------------------------------------------------------------

    def logical(self, left: _Node, word: str, right: _Node, op: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> _Node:
        self.need(left, ("boolean",), word)
        self.need(right, ("boolean",), word)
        return _Node(op(left.expr, right.expr), "boolean", left.pos)

    def arithmetic(self, left: _Node, token: _Token, right: _Node, op: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> _Node:
        self.need(left, ("number",), repr(token.text))
        self.need(right, ("number",), repr(token.text))
        kind = "other" if "other" in (left.kind, right.kind) else "number"
        return _Node(op(left.expr, right.expr), kind, left.pos)

    def predicate(self, left: _Node) -> _Node:
        token = self.advance()
        word = self.keyword(token)
        if token.kind == "op":
            right = self.expression(_SUM)
            left, right = self.compare_pair(left, right, repr(token.text))
            a, b = left.expr, right.expr
            op = token.text
            expr = {
                "=": lambda: a == b,
                "==": lambda: a == b,
                "!=": lambda: a != b,
                "<>": lambda: a != b,
                "<": lambda: a < b,
                "<=": lambda: a <= b,
                ">": lambda: a > b,
                ">=": lambda: a >= b,
            }[op]()
            return _Node(expr, "boolean", left.pos)
        if word == "IS":
            negate = self.keyword(self.peek()) == "NOT"
            if negate:
                self.advance()
            if self.keyword(self.peek()) != "NULL":
                raise self.unexpected(self.peek())
            self.advance()
            return _Node(left.expr.is_not_null() if negate else left.expr.is_null(), "boolean", left.pos)
        negate = word == "NOT"
        if negate:
            token = self.advance()
            word = self.keyword(token)
        if word == "IN":
            expr = self.in_list(left)
        elif word in ("LIKE", "ILIKE"):
            self.need(left, ("text",), word)
            pattern = self.advance()
            if pattern.kind != "string":
                raise self.fail(f"{word} needs a quoted pattern at character {pattern.pos + 1}, like 'llama%'")
            expr = left.expr.str.contains(_like_regex(str(pattern.value), word == "ILIKE"))
        else:  # BETWEEN
            low = self.expression(_SUM)
            if self.keyword(self.peek()) != "AND":
                raise self.unexpected(self.peek())
            self.advance()
            high = self.expression(_SUM)
            _, low = self.compare_pair(left, low, "BETWEEN")
            _, high = self.compare_pair(left, high, "BETWEEN")
            expr = (left.expr >= low.expr) & (left.expr <= high.expr)
        return _Node(expr.not_() if negate else expr, "boolean", left.pos)

    def in_list(self, left: _Node) -> pl.Expr:
        self.expect_op("(")
        items: list[_Node] = []
        while True:
            token = self.peek()
            if self.is_op(token, "-") and self.peek(1).kind == "number":
                self.advance()
                number = self.advance()
                items.append(self.literal(-number.value, token.pos))  # type: ignore[operator]
            elif token.kind in ("number", "string") or self.keyword(token) in ("TRUE", "FALSE", "NULL"):
                items.append(self.primary())
            else:
                raise self.fail(
                    f"IN (...) admits only literal values (numbers, 'strings', TRUE, FALSE, NULL);"
                    f" unexpected {_show(token.text, 30)!r} at character {token.pos + 1}"
                )
            if self.is_op(self.peek(), ","):
                self.advance()
                continue
            self.expect_op(")")
            break
        values = [self.comparable(left, item, "IN") for item in items if item.kind != "null"]
        has_null = len(values) < len(items)
        kinds = {item.kind for item in values}
        if len(kinds) > 1:
            raise self.fail(
                f"IN (...) mixes {' and '.join(sorted(_KIND_WORDS[k] for k in kinds))} at character {left.pos + 1}"
            )
        if not values:
            return pl.lit(None, dtype=pl.Boolean)
        operand = left.expr
        kind = kinds.pop()
        raw = [item.value for item in values]
        if kind == "number":
            if any(isinstance(v, float) for v in raw) or (left.dtype is not None and left.dtype.is_float()):
                operand, series = operand.cast(pl.Float64), pl.Series(raw, dtype=pl.Float64)
            else:
                series = pl.Series(raw, dtype=pl.Int64)
        elif kind == "text":
            series = pl.Series(raw, dtype=pl.String)
        elif kind == "boolean":
            series = pl.Series(raw, dtype=pl.Boolean)
        else:  # date/time, already parsed for the column's type
            series = pl.Series(raw).cast(left.dtype)  # type: ignore[arg-type]
        expr = operand.is_in(series.implode())
        if has_null:  # SQL: 'x IN (1, NULL)' is true or NULL, never false
            expr = pl.when(expr).then(pl.lit(True)).otherwise(pl.lit(None, dtype=pl.Boolean))
        return expr

    # -- functions ----------------------------------------------------------------------------

    def function(self, name: _Token) -> _Node:
        fname = name.text.lower()
        if fname not in _FUNCTIONS:
            raise self.fail(
                f"unknown function {_show(name.text, 30)!r} at character {name.pos + 1};"
                f" functions: {', '.join(_FUNCTIONS)}"
            )
        self.enter(name)
        self.expect_op("(")
        args: list[_Node] = []
        if not self.is_op(self.peek(), ")"):
            while True:
                args.append(self.expression(_OR))
                if not self.is_op(self.peek(), ","):
                    break
                self.advance()
        self.expect_op(")")
        self.depth -= 1
        arity, kinds, build = _FUNCTIONS[fname]
        if (arity is not None and len(args) != arity) or not args:
            count = "one or more" if arity is None else str(arity)
            raise self.fail(f"{fname}() takes {count} arguments, got {len(args)} at character {name.pos + 1}")
        if fname == "coalesce":
            first = next((a for a in args if a.kind != "null"), args[0])
            for arg in args:
                self.comparable(first, arg, "coalesce()")
            dtype = next((a.dtype for a in args if a.dtype is not None and a.kind != "null"), None)
            return _Node(pl.coalesce([a.expr for a in args]), first.kind, name.pos, dtype)
        for arg in args:
            self.need(arg, (kinds,), f"{fname}()")
        expr, kind = build(*(a.expr for a in args))
        dtype = args[0].dtype if fname == "abs" else None
        return _Node(expr, kind, name.pos, dtype)


_FUNCTIONS: dict[str, tuple[int | None, str, Callable[..., tuple[pl.Expr, str]]]] = {
    "lower": (1, "text", lambda x: (x.str.to_lowercase(), "text")),
    "upper": (1, "text", lambda x: (x.str.to_uppercase(), "text")),
    "length": (1, "text", lambda x: (x.str.len_chars(), "number")),
    "abs": (1, "number", lambda x: (x.abs(), "number")),
    "coalesce": (None, "", lambda *xs: (pl.coalesce(xs), "other")),
    "starts_with": (2, "text", lambda x, p: (x.str.starts_with(p), "boolean")),
    "ends_with": (2, "text", lambda x, s: (x.str.ends_with(s), "boolean")),
    "contains": (2, "text", lambda x, s: (x.str.contains(s, literal=True), "boolean")),
}


def _like_regex(pattern: str, ignore_case: bool) -> str:
    """An anchored regex for a SQL LIKE pattern: ``%`` any run, ``_`` one character, the rest literal."""
    parts = ["(?si)^" if ignore_case else "(?s)^"]
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append("\\" + ch if ch in _REGEX_META else ch)
    parts.append("$")
    return "".join(parts)
