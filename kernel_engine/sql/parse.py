"""Parse RisingWave-dialect SQL text into statement values.

sqlglot's `risingwave` dialect parses most statements. The few it returns as
an opaque Command (FLUSH, SHOW, ALTER SYSTEM, EXPLAIN, CREATE TABLE ... APPEND
ONLY) are recognised here; anything else that comes back as a Command is
rejected with an error naming it, never silently accepted.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as GlotParseError
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from kernel_engine.errors import Error, ParseError, UnsupportedError
from kernel_engine.sql import statements as st
from kernel_engine.sql.redact import redact_text
from kernel_engine.sql.split import Piece, split_statements
from kernel_engine.types import duck_type

__all__ = ["parse", "parse_statement"]

DIALECT = "risingwave"

_LEADING_COMMENTS = re.compile(r"(?:\s*--[^\n]*(?:\n|$)|\s*/\*.*?\*/)*\s*", re.S)
_FLUSH = re.compile(r"^FLUSH$", re.I)
_SHOW = re.compile(r"^SHOW\s+(.+?)$", re.I | re.S)
_ALTER_SYSTEM = re.compile(r"^ALTER\s+SYSTEM\s+SET\s+(\w+)\s*(?:=|TO)\s*(.+)$", re.I | re.S)
_SET = re.compile(r"^SET\s+(?:SESSION\s+)?(\w+)\s*(?:=|TO)\s*(.+)$", re.I | re.S)
_EXPLAIN = re.compile(r"^EXPLAIN\s+(.+)$", re.I | re.S)
_DESCRIBE = re.compile(r"^(?:DESCRIBE|DESC)\s+(\"?[\w.]+\"?)$", re.I)
_INSERT_VALUES = re.compile(
    r"^INSERT\s+INTO\s+(\"?\w+\"?)\s*(?:\(([\w\s,\"]*)\))?\s*VALUES\s*(\(.*\))$", re.I | re.S
)
_STRINGS = re.compile(r"'(?:[^']|'')*'")
_LITERAL_REST = re.compile(r"^(?:[\s\d.,()+\-eE]|\bNULL\b|\bTRUE\b|\bFALSE\b)*$", re.I)
_APPEND_ONLY = re.compile(r"\)\s*APPEND\s+ONLY\b", re.I)
_ON_CONFLICT = re.compile(
    r"\bON\s+CONFLICT\s+(DO\s+NOTHING|OVERWRITE|DO\s+UPDATE\s+IF\s+NOT\s+NULL)", re.I
)
_WATERMARK = re.compile(r",\s*WATERMARK\s+FOR\s+(\w+)\s+AS\s+([^,()]+(?:\([^)]*\))?[^,()]*)(?=\))",
                        re.I)


def parse(sql: str) -> list[tuple[Piece, st.Statement]]:
    """Split and parse every statement; errors carry the statement's line/column."""
    result = []
    for piece in split_statements(sql):
        try:
            stmt = parse_statement(piece.text)
        except ParseError as err:
            raise ParseError(_strip_prefix(err.message), piece.line + err.line - 1,
                             err.col + (piece.col - 1 if err.line == 1 else 0)) from err
        stmt.sql = piece.text
        if isinstance(stmt, (st.CreateSink, st.AlterSink)) or (
                isinstance(stmt, st.Explain) and isinstance(stmt.inner, st.CreateSink)):
            stmt.sql = redact_text(piece.text)  # the raw text (with secrets) stays in `raw`
        result.append((piece, stmt))
    return result


def _strip_prefix(message: str) -> str:
    return re.sub(r"^syntax error( at line \d+, column \d+)?: ", "", message)


_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s+ENCODE\s+(\w+)\s*(?:\(([^)]*)\))?\s*$", re.I)
_ENCODE_OPTION = re.compile(r"([\w.]+)\s*=\s*'((?:[^']|'')*)'")


def _with_format(text: str) -> st.Statement | None:
    """CREATE TABLE/SOURCE ... FORMAT PLAIN ENCODE CSV (...): the FORMAT clause split off."""
    if not re.match(r"^CREATE\s+(?:TABLE|SOURCE)\b", text, re.I):
        return None
    m = _FORMAT.search(text)
    if m is None:
        return None
    stmt = parse_statement(text[: m.start()])
    if not isinstance(stmt, st.CreateTable):
        return None
    stmt.format, stmt.encode = m.group(1).upper(), m.group(2).upper()
    for key, value in _ENCODE_OPTION.findall(m.group(3) or ""):
        stmt.options[key.lower()] = value.replace("''", "'")
    return stmt


def parse_statement(text: str) -> st.Statement:
    """Parse one statement (no trailing semicolon)."""
    lead = _LEADING_COMMENTS.match(text)
    prefix = text[:lead.end()] if lead else ""
    text = text[len(prefix):].strip()
    try:
        special = _special(text) or _with_format(text)
        if special is not None:
            return special
        return _from_ast(_parse_one(_whole_intervals(text)), text)
    except ParseError as err:
        if not prefix or not err.line:
            raise
        col = err.col + len(prefix) - prefix.rfind("\n") - 1 if err.line == 1 else err.col
        raise ParseError(_strip_prefix(err.message), err.line + prefix.count("\n"),
                         col) from err


def _special(text: str) -> st.Statement | None:
    sink = _sink_statement(text)
    if sink is not None:
        return sink
    if _FLUSH.match(text):
        return st.Flush()
    if re.match(r"^RECOVER$", text, re.I):
        return st.Recover()
    if m := _SHOW.match(text):
        words = m.group(1).split()
        if len(words) >= 2 and words[0].upper() == "CREATE":
            return st.Show("CREATE " + " ".join(w.upper() for w in words[1:-1]), words[-1])
        return st.Show(" ".join(w.upper() for w in words))
    if m := _ALTER_SYSTEM.match(text):
        return st.AlterSystem(m.group(1).lower(), _unquote(m.group(2).strip()))
    if m := _SET.match(text):
        return st.SetVariable(m.group(1).lower(), _unquote(m.group(2).strip()))
    if m := _EXPLAIN.match(text):
        try:
            return st.Explain(parse_statement(m.group(1)))
        except ParseError as err:  # the position is in the inner statement: make it ours
            if not err.line:
                raise
            before = text[:m.start(1)]
            shift = len(before) - before.rfind("\n") - 1 if err.line == 1 else 0
            raise ParseError(err.detail, err.line + before.count("\n"),
                             err.col + shift) from None
    if m := _DESCRIBE.match(text):
        return st.Describe(_ident(m.group(1)))
    if m := _INSERT_VALUES.match(text):
        values = m.group(3)
        if _LITERAL_REST.match(_STRINGS.sub("0", values)):
            cols = [_ident(c.strip()) for c in m.group(2).split(",")] if m.group(2) else None
            return st.Insert(_ident(m.group(1)), cols, values_sql=values)
    return None


_NAME = r'("(?:[^"]|"")+"|[\w]+)'
_CREATE_SINK = re.compile(r"^CREATE\s+SINK\s+(IF\s+NOT\s+EXISTS\s+)?" + _NAME + r"\s+(.*)$",
                          re.I | re.S)
_DROP_SINK = re.compile(r"^DROP\s+SINK\s+(IF\s+EXISTS\s+)?" + _NAME + r"\s*$", re.I)
_ALTER_SINK = re.compile(r"^ALTER\s+SINK\s+" + _NAME +
                         r"\s+(RESUME|CONNECTOR\s+WITH\s*\((.*)\))\s*$", re.I | re.S)
_SINK_OPTION = re.compile(r"\s*([\w.]+)\s*=\s*('(?:[^']|'')*'|[^,'\s]+)\s*(?:,|$)", re.S)


def _sink_statement(text: str) -> st.Statement | None:
    """CREATE SINK, DROP SINK and ALTER SINK (parsed here: options have dotted keys and
    secrets, and a FORMAT ... ENCODE clause may follow)."""
    if m := _DROP_SINK.match(text):
        return st.DropSink(_ident(m.group(2)), if_exists=bool(m.group(1)))
    if m := _ALTER_SINK.match(text):
        options = _sink_options(m.group(3)) if m.group(3) is not None else {}
        return st.AlterSink(_ident(m.group(1)), options, raw=text)
    if m := _CREATE_SINK.match(text):
        return _create_sink(text, m)
    return None


def _create_sink(text: str, m: re.Match[str]) -> st.CreateSink:
    rest = m.group(3)
    fmt, encode, fmt_options = None, None, {}
    if f := _FORMAT.search(rest):
        fmt, encode = f.group(1).upper(), f.group(2).upper()
        fmt_options = {k.lower(): v.replace("''", "'")
                       for k, v in _ENCODE_OPTION.findall(f.group(3) or "")}
        rest = rest[: f.start()]
    rest = rest.rstrip()
    start = _last_group_start(rest)
    before = rest[:start].rstrip() if start is not None else ""
    if start is None or not re.search(r"\bWITH$", before, re.I):
        raise ParseError("CREATE SINK needs WITH (connector = ...) after FROM relation or "
                         "AS SELECT ...", 1, 1)
    what = before[:-4].strip()
    options = _sink_options(rest[start + 1:-1])
    source, query = None, None
    if f := re.match(r"^FROM\s+" + _NAME + r"$", what, re.I):
        source = _ident(f.group(1))
    elif f := re.match(r"^AS\s+(.+)$", what, re.I | re.S):
        node = _parse_one(f.group(1))
        if not isinstance(node, exp.Query):
            raise UnsupportedError("CREATE SINK ... AS needs a SELECT query")
        query = node
    else:
        raise ParseError("CREATE SINK needs FROM relation or AS SELECT ... before WITH", 1, 1)
    head = text[: len(text) - len(m.group(3))] + what
    return st.CreateSink(_ident(m.group(2)), source, query, options, fmt, encode, fmt_options,
                         if_not_exists=bool(m.group(1)), head=head, raw=text)


def _last_group_start(text: str) -> int | None:
    """Where the parenthesised group that ends `text` opens (quotes respected)."""
    if not text.endswith(")"):
        return None
    stack: list[int] = []
    quote: str | None = None
    opened = None
    for i, ch in enumerate(text):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            opened = stack.pop()
    return opened if not stack else None


def _sink_options(body: str) -> dict[str, str]:
    """`key = 'value', ...` (keys may be dotted: jdbc.url); values quoted or bare words."""
    options: dict[str, str] = {}
    pos = 0
    body = body.strip()
    while pos < len(body):
        m = _SINK_OPTION.match(body, pos)
        if m is None or m.end() == pos:
            raise ParseError(f"cannot read the sink option at: {redact_text(body[pos:])[:40]}",
                             1, 1)
        value = m.group(2)
        options[m.group(1).lower()] = (value[1:-1].replace("''", "'")
                                       if value.startswith("'") else value)
        pos = m.end()
    return options


def _whole_intervals(text: str) -> str:
    """Write INTERVAL '1 day 02:00:00' as CAST('1 day 02:00:00' AS INTERVAL).

    sqlglot reads such a literal as INTERVAL '1' DAY and silently drops the rest.
    """
    if "interval" not in text.lower():
        return text
    try:
        tokens = sqlglot.tokenize(text, read=DIALECT)
    except TokenError:
        return text
    out, last = [], 0
    for i, (kw, lit) in enumerate(zip(tokens, tokens[1:], strict=False)):
        after = tokens[i + 2] if i + 2 < len(tokens) else None
        if (kw.token_type == TokenType.INTERVAL and lit.token_type == TokenType.STRING
                and _interval_loses_parts(lit.text)
                and (after is None or after.token_type != TokenType.VAR)):
            out.append(f"{text[last:kw.start]}CAST({text[lit.start:lit.end + 1]} AS INTERVAL)")
            last = lit.end + 1
    return "".join(out) + text[last:]


def _interval_loses_parts(value: str) -> bool:
    parts = exp.INTERVAL_STRING_RE.findall(value)
    return len(parts) == 1 and exp.INTERVAL_STRING_RE.fullmatch(value) is None


def _ident(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name.lower()


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _parse_one(text: str) -> exp.Expr:
    try:
        parsed = sqlglot.parse(text, read=DIALECT)
    except GlotParseError as err:
        first = err.errors[0] if err.errors else {}
        raise ParseError(_tokens(first.get("description", str(err)).split("\n")[0]),
                         first.get("line", 1), first.get("col", 1)) from err
    except TokenError as err:
        raise ParseError(str(err), 1, 1) from err
    if len(parsed) != 1 or parsed[0] is None:
        raise ParseError("expected one statement", 1, 1)
    return parsed[0]


_TOKEN = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")


def _tokens(message: str) -> str:
    """sqlglot's token reprs as the text they stand for ('end of input' for the sentinel)."""
    message = re.sub(r"<class 'sqlglot\.[\w.]+\.(\w+)'>", r"\1", message)
    return _TOKEN.sub(lambda m: "end of input" if m.group(1) == "SENTINEL" else
                      repr(m.group(2)), message)


def _from_ast(node: exp.Expr, text: str) -> st.Statement:
    if isinstance(node, exp.Command):
        return _command(node, text)
    if isinstance(node, exp.Query):
        return st.Query(node)
    if isinstance(node, exp.Create):
        return _create(node, text)
    if isinstance(node, exp.Drop):
        return _drop(node)
    if isinstance(node, exp.Insert):
        return _insert(node)
    if isinstance(node, exp.Update):
        return _update(node)
    if isinstance(node, exp.Delete):
        return st.Delete(_table_name(node.this), _where(node))
    if isinstance(node, exp.Describe):
        return st.Describe(_table_name(node.this))
    if isinstance(node, exp.Set):
        item = node.expressions[0].this if node.expressions else None
        if isinstance(item, exp.EQ):
            return st.SetVariable(item.this.name.lower(), item.expression.name)
    if isinstance(node, exp.Column) and node.name.upper() == "FLUSH":
        return st.Flush()
    raise UnsupportedError(f"statement {_what(text)} is not supported; {_SUPPORTED}")


def _command(node: exp.Command, text: str) -> st.Statement:
    head = str(node.this).upper()
    if head == "CREATE" and re.match(r"^\s*TABLE\b", str(node.expression), re.I):
        return _create_table_extended(text)
    raise UnsupportedError(f"statement {_what(text)} is not supported; {_SUPPORTED}")


_SUPPORTED = ("supported are CREATE TABLE / MATERIALIZED VIEW / SINK, DROP, INSERT, UPDATE, "
              "DELETE, SELECT, FLUSH, SET, ALTER SYSTEM SET, SHOW, DESCRIBE and EXPLAIN")


def _what(text: str) -> str:
    """The statement's leading keywords (CREATE/ALTER/DROP take the next word too)."""
    words = text.split()[:2]
    if words and words[0].upper() not in ("CREATE", "ALTER", "DROP"):
        words = words[:1]
    return " ".join(w.upper() for w in words)


def _create_table_extended(text: str) -> st.Statement:
    """CREATE TABLE with RisingWave clauses sqlglot does not know."""
    append_only = bool(_APPEND_ONLY.search(text))
    cleaned = _APPEND_ONLY.sub(")", text)
    conflict = "overwrite"
    if m := _ON_CONFLICT.search(cleaned):
        conflict = "do_nothing" if "NOTHING" in m.group(1).upper() else (
            "overwrite" if "OVERWRITE" in m.group(1).upper() else "do_update_if_not_null")
        cleaned = cleaned[: m.start()] + cleaned[m.end():]
    cleaned = _WATERMARK.sub("", cleaned)
    node = _parse_one(cleaned)
    if isinstance(node, exp.Command):
        raise UnsupportedError(f"could not understand CREATE TABLE: {' '.join(text.split())[:80]}")
    if not isinstance(node, exp.Create):
        raise UnsupportedError(f"expected CREATE TABLE: {' '.join(text.split())[:80]}")
    stmt = _create(node, cleaned)
    assert isinstance(stmt, st.CreateTable)
    stmt.append_only = append_only
    stmt.on_conflict = conflict
    return stmt


def _create(node: exp.Create, text: str) -> st.Statement:
    kind = str(node.args.get("kind") or "").upper()
    props = node.args.get("properties")
    materialized = props is not None and any(
        isinstance(p, exp.MaterializedProperty) for p in props.expressions)
    if kind == "TABLE":
        if _APPEND_ONLY.search(text) or _ON_CONFLICT.search(text) or _WATERMARK.search(text):
            return _create_table_extended(text)
        return _create_table(node)
    if kind == "VIEW" and materialized:
        query = node.expression
        if not isinstance(query, exp.Query):
            raise UnsupportedError("CREATE MATERIALIZED VIEW needs AS SELECT ...")
        return st.CreateMaterializedView(_table_name(node.this), query,
                                         if_not_exists=bool(node.args.get("exists")))
    if kind == "VIEW":
        raise UnsupportedError("CREATE VIEW is not supported; use CREATE MATERIALIZED VIEW")
    if kind == "SOURCE":
        stmt = _create_table(node)
        stmt.source = True
        if "connector" not in stmt.options:
            raise UnsupportedError("CREATE SOURCE needs WITH (connector = ...): datagen, fs or "
                                   "s3; for data you insert yourself use CREATE TABLE")
        return stmt
    raise UnsupportedError(f"CREATE {kind} is not supported yet; supported are CREATE TABLE and "
                           "CREATE MATERIALIZED VIEW")


def _create_table(node: exp.Create) -> st.CreateTable:
    schema = node.this
    if not isinstance(schema, exp.Schema):
        raise UnsupportedError("CREATE TABLE needs a column list; CREATE TABLE AS is not supported")
    columns: list[tuple[str, str]] = []
    pk: list[str] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            kind = item.args.get("kind")
            if kind is None:
                raise ParseError(f"column {item.name} needs a type", 1, 1)
            columns.append((item.name.lower() if not item.this.quoted else item.name,
                            duck_type(kind)))
            for c in item.args.get("constraints") or []:
                if isinstance(c.kind, exp.PrimaryKeyColumnConstraint):
                    pk.append(columns[-1][0])
        elif isinstance(item, exp.PrimaryKey):
            pk.extend(i.name.lower() for i in item.expressions)
        else:
            raise UnsupportedError(f"table element {item.sql(DIALECT)} is not supported")
    options: dict[str, str] = {}
    props = node.args.get("properties")
    for p in props.expressions if props is not None else []:
        if isinstance(p, exp.Property):
            options[p.this.sql(DIALECT).lower() if not isinstance(p.this, str) else p.this] = (
                p.args["value"].name if p.args.get("value") is not None else "")
    return st.CreateTable(_table_name(schema.this), columns, pk,
                          if_not_exists=bool(node.args.get("exists")), options=options)


def _drop(node: exp.Drop) -> st.Drop:
    kind = str(node.args.get("kind") or "").upper()
    if kind == "VIEW" and node.args.get("materialized"):
        kind = "MATERIALIZED VIEW"
    elif kind == "VIEW":
        raise UnsupportedError("DROP VIEW is not supported; use DROP MATERIALIZED VIEW")
    if kind not in ("TABLE", "MATERIALIZED VIEW", "SOURCE"):
        raise UnsupportedError(f"DROP {kind} is not supported")
    tables = node.args.get("tables") or [node.this]
    return st.Drop(kind, [_table_name(t) for t in tables], if_exists=bool(node.args.get("exists")),
                   cascade=bool(node.args.get("cascade")))


def _insert(node: exp.Insert) -> st.Insert:
    target = node.this
    columns = None
    if isinstance(target, exp.Schema):
        columns = [c.name.lower() for c in target.expressions]
        target = target.this
    query = node.expression
    if isinstance(query, exp.Values):
        query = exp.select("*").from_(query.as_("_v"))
    if not isinstance(query, exp.Query):
        raise UnsupportedError("INSERT needs VALUES or SELECT")
    return st.Insert(_table_name(target), columns, query=query)


def _update(node: exp.Update) -> st.Update:
    assignments = []
    for eq in node.expressions:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            raise UnsupportedError(f"UPDATE assignment {eq.sql(DIALECT)} is not supported")
        assignments.append((eq.this.name.lower(), eq.expression))
    return st.Update(_table_name(node.this), assignments, _where(node))


def _where(node: exp.Expression) -> exp.Expression | None:
    where = node.args.get("where")
    return where.this if where is not None else None


def _table_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Table):
        ident = node.this
        return ident.name if getattr(ident, "quoted", False) else ident.name.lower()
    raise Error(f"expected a table name, found {node.sql(DIALECT)}")
