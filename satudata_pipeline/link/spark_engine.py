"""Linkage on Spark: the model's DuckDB SQL rewritten for Spark, and the Parquet hand-over.

With `SATUDATA_ENGINE=spark` (docs/spark.md) the two steps whose cost grows fastest with the
population, training the Splink model and scoring the candidate pairs, run on a Spark session
(`resources.SparkResource`) through Splink's Spark backend; everything else stays on the warehouse.

- One model specification for both engines. `splink_settings.py` writes its comparison levels and
  blocking rules in DuckDB SQL (that is what the saved model files hold and what the DuckDB engine
  runs, unchanged). Splink transpiles only its own library levels; custom SQL reaches the backend
  as written, so `spark_settings` rewrites every condition with sqlglot plus the few DuckDB list
  and string functions sqlglot leaves alone (`to_spark_sql`). A trained Spark model goes back to the
  DuckDB SQL of the same specification (`with_duckdb_sql`): the saved model is the same file either
  engine would write, and the steps after scoring read it as before.
- Data crosses as Parquet: `link.person_records` leaves the warehouse by DuckDB COPY, Spark reads it,
  Splink's scored pairs come back as Parquet and are loaded into the table the DuckDB engine
  writes, so `write_match_pairs`, clusters and everything downstream run unchanged.
- One Jaro-Winkler: Splink's Spark `jaro_winkler` (commons-text) is replaced on the session by
  DuckDB's algorithm (`link/jvm`, a Java UDF built by ./scripts/setup.sh --spark,
  `register_jaro_winkler`), so both engines give every pair the same comparison levels.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

ENGINES = ("duckdb", "spark")

# DuckDB function -> Spark function of the same meaning, where sqlglot keeps the DuckDB name.
_RENAMED = {
    "list_intersect": "array_intersect",  # both: distinct elements in both lists; NULL in, NULL out
    "regexp_split_to_array": "split",  # both split on a regular expression
    # DuckDB's Jaro-Winkler on Spark: link/jvm's UDF, registered as `jaro_winkler` over Splink's
    # own (register_jaro_winkler), so Splink's library levels and these conditions both use it
    "jarowinkler_similarity": "jaro_winkler",
    "jaro_winkler_similarity": "jaro_winkler",
}

# DuckDB's jaro_winkler_similarity as a Spark UDF: link/jvm/DuckDBJaroWinkler.java, compiled by
# ./scripts/setup.sh --spark into the venv (beside it, the hash of the source it was built from).
JARO_WINKLER_CLASS = "satudata.udf.DuckDBJaroWinkler"
_JVM_SOURCE = Path(__file__).parent / "jvm" / "DuckDBJaroWinkler.java"
_SETUP_HINT = "run ./scripts/setup.sh --spark (docs/spark.md)"


def udf_jar_location() -> Path:
    """Where ./scripts/setup.sh --spark puts the jar of satudata's Spark functions."""
    return Path(sys.prefix) / "share" / "satudata" / "satudata-udf.jar"


def udf_jar() -> Path:
    """The jar of satudata's Spark functions; fails when it is missing or was built from another
    version of the Java source (never the other engine's Jaro-Winkler in its place)."""
    jar = udf_jar_location()
    if not jar.is_file():
        raise RuntimeError(
            f"the Spark engine's Jaro-Winkler function is not built ({jar} is missing): {_SETUP_HINT}"
        )
    if _JVM_SOURCE.is_file():  # a source checkout: the jar must be built from this source
        stamp = jar.with_suffix(".sha256")
        built = stamp.read_text().split()[:1] if stamp.is_file() else []
        if built != [hashlib.sha256(_JVM_SOURCE.read_bytes()).hexdigest()]:
            raise RuntimeError(
                f"the Spark engine's Jaro-Winkler function ({jar}) was built from another version "
                f"of {_JVM_SOURCE.name}: {_SETUP_HINT}"
            )
    return jar


def _is_connect(session) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def register_jaro_winkler(session) -> None:
    """Register DuckDB's Jaro-Winkler as `jaro_winkler` on the session, replacing the function of
    that name Splink registers (its commons-text one) in every query run afterwards: Splink's
    generated SQL and the model's rewritten conditions, inside lambdas too. Call it after creating
    Splink's SparkAPI (which registers Splink's functions). A local or cluster session gets the jar
    added (`ADD JAR`: the driver, and the executors fetch it); a Spark Connect server needs it on its
    classpath, as it needs Splink's."""
    from pyspark.sql.types import DoubleType

    jar = udf_jar()
    if not _is_connect(session):
        added = {str(row[0]).rsplit("/", 1)[-1] for row in session.sql("LIST JARS").collect()}
        if jar.name not in added:
            if "'" in str(jar):
                raise RuntimeError(f"the path of {jar.name} contains a quote: {_SETUP_HINT}")
            session.sql(f"ADD JAR '{jar}'")
        # ADD JAR makes the session's jar class loader the class loader of the JVM thread that ran
        # it; this step may run on another one (one JVM thread per Python thread)
        jvm = session.sparkContext._jvm
        jvm.java.lang.Thread.currentThread().setContextClassLoader(
            session._jsparkSession.sharedState().jarClassLoader()
        )
    try:
        session.udf.registerJavaFunction("jaro_winkler", JARO_WINKLER_CLASS, DoubleType())
    except Exception as e:  # the class is missing (no names or values in this message)
        where = "the Spark Connect server's classpath" if _is_connect(session) else "the session"
        raise RuntimeError(
            f"could not register the Spark engine's Jaro-Winkler function ({JARO_WINKLER_CLASS}) "
            f"from {jar.name} on {where}: {_SETUP_HINT}"
        ) from e


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpFullMatch):  # the whole string matches
        return exp.RegexpLike(
            this=node.this, expression=exp.Literal.string(f"^(?:{node.expression.name})$")
        )
    if isinstance(node, exp.JarowinklerSimilarity):
        return exp.Anonymous(this="jaro_winkler", expressions=[node.this, node.expression])
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name in _RENAMED:
            return exp.Anonymous(this=_RENAMED[name], expressions=node.expressions)
        if name == "list_bool_or":  # list_bool_or(list_transform(xs, p)) = exists(xs, p)
            (inner,) = node.expressions
            if isinstance(inner, exp.Transform):
                return exp.Anonymous(this="exists", expressions=[inner.this, inner.expression])
            raise ValueError("list_bool_or is only rewritten over list_transform(list, lambda)")
    return node


def to_spark_sql(sql: str) -> str:
    """One DuckDB SQL condition (Splink's `_l` / `_r` columns, or `l.` / `r.` in a blocking rule)
    as Spark SQL. `len(list)` becomes `size(list)` (the model's SQL uses `length` for strings and
    `len` for lists only); double-quoted identifiers become back-quoted."""
    text = sql.strip()
    if not text or text.upper() == "ELSE":
        return sql
    text = re.sub(r"\blen\(", "size(", text)
    tree = sqlglot.parse_one(text, read="duckdb")
    out = tree.sql(dialect="spark")
    for _ in range(10):  # a rewritten node's arguments are rewritten on the next pass
        tree = tree.transform(_rewrite)
        again = tree.sql(dialect="spark")
        if again == out:
            return out
        out = again
    raise RuntimeError("the model's SQL did not settle when rewritten for Spark")


def spark_settings(settings: dict) -> dict:
    """A copy of a Splink settings dict (DuckDB SQL) whose conditions and blocking rules are Spark
    SQL; parameters and structure unchanged."""
    out = copy.deepcopy(settings)
    out["sql_dialect"] = "spark"
    for comp in out.get("comparisons", []):
        for level in comp.get("comparison_levels", []):
            if "sql_condition" in level:
                level["sql_condition"] = to_spark_sql(level["sql_condition"])
    rules = []
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        if isinstance(rule, dict):
            rule = dict(rule, blocking_rule=to_spark_sql(rule["blocking_rule"]))
            rule["sql_dialect"] = "spark"
        else:
            rule = to_spark_sql(str(rule))
        rules.append(rule)
    out["blocking_rules_to_generate_predictions"] = rules
    return out


def with_duckdb_sql(trained: dict, template: dict) -> dict:
    """The parameters of a model trained on Spark with the DuckDB SQL of `template` (the settings
    it was made from): the saved model is the same file whichever engine trained it."""
    out = copy.deepcopy(trained)
    out["sql_dialect"] = "duckdb"  # as the DuckDB engine saves it
    comps, tcomps = out.get("comparisons", []), template.get("comparisons", [])
    if [c.get("output_column_name") for c in comps] != [
        c.get("output_column_name") for c in tcomps
    ]:
        raise RuntimeError("the model trained on Spark has other comparisons than its settings")
    for comp, tcomp in zip(comps, tcomps):
        levels, tlevels = comp.get("comparison_levels", []), tcomp.get("comparison_levels", [])
        if len(levels) != len(tlevels):
            raise RuntimeError(
                f"comparison {comp.get('output_column_name')}: the model trained on Spark has "
                "another number of levels than its settings"
            )
        for level, tlevel in zip(levels, tlevels):
            level["sql_condition"] = tlevel["sql_condition"]
    rules = out.get("blocking_rules_to_generate_predictions", [])
    trules = template.get("blocking_rules_to_generate_predictions", [])
    if len(rules) != len(trules):
        raise RuntimeError("the model trained on Spark has other blocking rules than its settings")
    for i, (rule, trule) in enumerate(zip(rules, trules)):
        sql = trule["blocking_rule"] if isinstance(trule, dict) else str(trule)
        if isinstance(rule, dict):
            rule.update(blocking_rule=sql, sql_dialect="duckdb")
        else:
            rules[i] = sql
    return out


def rule_for_spark(rule: Any) -> Any:
    """A training / blocking rule as the Spark linker takes it: SQL strings rewritten, Splink's rule
    creators (dialect-aware) as they are."""
    return to_spark_sql(rule) if isinstance(rule, str) else rule


class Exchange:
    """A folder of Parquet files both DuckDB and Spark read: the records going to Spark and the
    scored pairs coming back. Removed when the step ends (it holds personal data)."""

    def __init__(self, root: Path):
        self.path = root / f"x-{uuid.uuid4().hex[:12]}"
        self.path.mkdir(mode=0o700, parents=True, exist_ok=False)

    def file(self, name: str) -> str:
        return str(self.path / name)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def records_to_spark(conn, spark, exchange: Exchange, source_sql: str, name: str):
    """Copy a DuckDB query's rows to Parquet (DuckDB COPY) and read them into Spark; returns the
    Spark DataFrame (cached: Splink reads the records several times)."""
    path = exchange.file(f"{name}.parquet")
    conn.execute(f"COPY ({source_sql}) TO '{path}' (FORMAT parquet)")
    return spark.read.parquet(path).cache()


def spark_to_duckdb(conn, df, exchange: Exchange, name: str, table: str) -> int:
    """Write a Spark DataFrame as Parquet and load it into the DuckDB table `table` (replaced);
    returns its row count."""
    path = exchange.file(f"{name}.parquet")
    df.write.mode("overwrite").parquet(path)
    conn.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet('{path}/*.parquet')"
    )
    return conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


class SparkLinkage:
    """Splink on a Spark session for one step: the warehouse connection (DuckDB) the records come
    from and the scored pairs go back to, Splink's Spark backend, and the Parquet exchange folder.

    Between Splink's steps the Spark backend breaks lineage by persisting (a local session: in
    memory, spilling to the scratch folder) or by Parquet under the checkpoint folder (a cluster,
    Splink's default)."""

    def __init__(self, conn, session, scratch: Path, local: bool):
        from splink.backends.spark import SparkAPI

        self.conn = conn
        self.session = session
        self.api = SparkAPI(
            spark_session=session, break_lineage_method="persist" if local else None
        )
        # after SparkAPI, which registers Splink's functions: DuckDB's Jaro-Winkler replaces its own
        register_jaro_winkler(session)
        self.exchange = Exchange(scratch / "exchange")
        self._templates: dict[int, dict] = {}
        self._records: dict[str, Any] = {}

    def records(
        self, sql: str = "SELECT * FROM link.person_records", name: str = "sd_person_records"
    ):
        """Rows of a warehouse query, registered with Splink's Spark backend as `name` (once)."""
        if name not in self._records:
            df = records_to_spark(self.conn, self.session, self.exchange, sql, name)
            self._records[name] = self.api.register(df, table_name=name)
        return self._records[name]

    def linker(self, sdf, settings: Any):
        """A Splink linker on Spark for settings in DuckDB SQL (a dict, or the SettingsCreator)."""
        from splink import Linker

        template = (
            settings if isinstance(settings, dict) else settings.create_settings_dict("duckdb")
        )
        linker = Linker(sdf, spark_settings(template), log_level=logging.WARNING)
        self._templates[id(linker)] = template
        return linker

    def saved(self, linker) -> dict:
        """The linker's trained model, in the DuckDB SQL it was made from (a saved model file)."""
        return with_duckdb_sql(linker.misc.save_model_to_json(), self._templates[id(linker)])

    def to_warehouse(self, splink_df, table: str) -> int:
        """A Splink result on Spark loaded into the warehouse table `table`; returns its rows."""
        return spark_to_duckdb(
            self.conn, splink_df.as_spark_dataframe(), self.exchange, splink_df.physical_name, table
        )

    def close(self) -> None:
        """Unpersist what the step cached and drop its views (a session outlives the step)."""
        try:
            for name in self._records:
                self.session.catalog.dropTempView(name)
            self.session.catalog.clearCache()
        finally:
            self._records.clear()
            self.exchange.close()


@contextmanager
def spark_linkage(conn, resource) -> Iterator[SparkLinkage]:
    """A SparkLinkage on the resource's session for the duration of one step."""
    linkage = SparkLinkage(
        conn, resource.session(), resource.scratch_dir(), resource.master_url().startswith("local")
    )
    try:
        yield linkage
    finally:
        linkage.close()
