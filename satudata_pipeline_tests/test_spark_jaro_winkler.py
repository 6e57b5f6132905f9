"""One Jaro-Winkler for both engines (docs/spark.md): on Spark, `jaro_winkler` is satudata's Java UDF
(satudata_pipeline/link/jvm, built by ./scripts/setup.sh --spark), which must give DuckDB's
`jaro_winkler_similarity` for every pair: a table of edge cases plus a few thousand generated
name-like pairs, compared in one DataFrame on one local Spark session (local[1]), called directly,
inside a lambda capturing a column, and word by word as the address comparison calls it.

The Spark tests are skipped when pyspark or a Java runtime is missing; a missing jar is a failure
(the engine refuses to start without it)."""

from __future__ import annotations

import random

import duckdb
import pytest
from fixtures.spark import needs_spark

from satudata_pipeline.link import spark_engine
from satudata_pipeline.resources import SparkResource

TOLERANCE = 1e-12

EDGE_PAIRS = [
    ("SITI SUSILO", "ITI SUSILO"),  # first letter dropped: 0.8697 on DuckDB, 0.8530 commons-text
    ("ITI SUSILO", "SITI SUSILO"),
    ("", ""),
    ("", "A"),
    ("A", ""),
    ("A", "A"),
    ("A", "B"),
    ("AB", "A"),
    ("A", "AB"),
    ("AB", "BA"),
    ("ABC", "ABC"),
    ("BUDI SANTOSO", "BUDI SANTOSO"),
    ("ABCD", "WXYZ"),  # no common characters
    ("AAAA", "BBBB"),
    ("MARTHA", "MARHTA"),
    ("DWAYNE", "DUANE"),
    ("DIXON", "DICKSONX"),
    ("JELLYFISH", "SMELLYFISH"),
    ("PUTRI", "PUTRI AYU"),  # prefix cases: one a prefix of the other
    ("PUTRI AYU", "PUTRI"),
    ("PUTR", "PUTRA"),
    ("ABCDEFGH", "ABCDXXXX"),  # common prefix of 4, then nothing
    ("ABCDEFGH", "ABCEFGHD"),
    ("NUR HIDAYAH", "NURHIDAYAH"),  # spaces
    ("NUR  HIDAYAH", "NUR HIDAYAH"),
    (" ", " "),
    (" A", "A "),
    ("MUHAMMAD RIZKY", "RIZKY MUHAMMAD"),
    ("SRI WAHYUNI", "SRI WAHYUNINGSIH"),
    ("DEWI", "DEWI SARTIKA PUTRI MAHARANI"),
    ("JOSÉ", "JOSE"),  # non-ASCII: DuckDB 2.0 compares code points (not bytes, not UTF-16)
    ("ÉA", "EA"),
    ("E\u0301A", "ÉA"),  # a combining accent is a code point of its own
    ("NGUYỄN", "NGUYEN"),
    ("ÑOÑO", "NONO"),
    ("😀A", "A😀"),
    ("😀" * 3 + "AB", "😀" * 3 + "BA"),
    ("É" * 65, "É" * 64),  # 65 code points, 130 bytes
    ("😀" * 70, "😀" * 69 + "A"),
    ("ÑA" * 40, "AÑ" * 40),
    (
        "JL. KEBON JERUK RAYA NO 12 RT 003 RW 004 KELURAHAN KEBON JERUK KECAMATAN KEBON JERUK",
        "JL KEBON JERUK RAYA NO 12 RT 03 RW 04 KEL KEBON JERUK KEC KEBON JERUK",
    ),
    ("A" * 64, "A" * 64),  # the one-word / multi-word boundary
    ("A" * 65, "A" * 64),
    ("A" * 64 + "B", "B" + "A" * 64),
    ("AB" * 40, "BA" * 40),
    ("X" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 5 + "X"),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 8, "ZYXWVUTSRQPONMLKJIHGFEDCBA" * 8),
    ("P" * 100 + "QRS", "P" * 100 + "SRQ"),  # a long common prefix, a short rest
    ("A" * 200, "A"),
    ("A", "A" * 200),
    ("A" * 128, "A" * 127 + "B"),
    (None, "A"),
    ("A", None),
    (None, None),
]

SYLLABLES = (
    "SI TI SU LO NUR HA YA RAH MAN SRI BU DI YAN TO JO KO WI DO PU TRI A YU DE WI SAN "
    "MU HAM MAD RIZ KY FA JAR IN DAH LES TA RI AN NI NG SIH GUS WAN KUS MA BAM BANG SU "
    "KAR NO HAR YA NTO E KO PRA SE TYO"
).split()
EXTRA = "ABCDEFGHIJKLMNOPQRSTUVWXYZ '-.ÉÑÖ😀"


def _name(rng: random.Random) -> str:
    words = [
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
        for _ in range(rng.randint(1, 4))
    ]
    return " ".join(words)


def _variant(rng: random.Random, s: str) -> str:
    """The name with a few typos, as the deliveries have them."""
    chars = list(s)
    for _ in range(rng.randint(0, 3)):
        op = rng.randrange(7)
        i = rng.randrange(len(chars)) if chars else 0
        if op == 0 and chars:
            del chars[i]  # a letter dropped (the first one too)
        elif op == 1:
            chars.insert(i, rng.choice(EXTRA))
        elif op == 2 and chars:
            chars[i] = rng.choice(EXTRA)
        elif op == 3 and len(chars) > 1:
            j = min(i + 1, len(chars) - 1)
            chars[i], chars[j] = chars[j], chars[i]
        elif op == 4:
            words = "".join(chars).split(" ")
            rng.shuffle(words)
            chars = list(" ".join(words))
        elif op == 5:
            chars = chars[: rng.randint(0, len(chars))]
        else:
            chars.extend(" " + _name(rng))
    return "".join(chars)


def generated_pairs(n: int = 4000, seed: int = 20261203) -> list[tuple[str, str]]:
    """Deterministic name-like pairs: related (typos, dropped letters, reordered words, cut-offs),
    unrelated, and long (address-like, past 64 code points)."""
    rng = random.Random(seed)
    pairs = []
    for k in range(n):
        a = _name(rng)
        if k % 10 == 0:  # long strings: the multi-word path
            a = " ".join(_name(rng) for _ in range(rng.randint(4, 12)))
        kind = rng.random()
        b = _name(rng) if kind < 0.15 else _variant(rng, a)
        if rng.random() < 0.5:
            a, b = b, a
        pairs.append((a, b))
    return pairs


def all_pairs() -> list[tuple[str | None, str | None]]:
    return EDGE_PAIRS + generated_pairs()


def duckdb_values(pairs) -> list[float | None]:
    with duckdb.connect() as conn:
        conn.execute("CREATE TABLE p (i INTEGER, a VARCHAR, b VARCHAR)")
        conn.executemany(
            "INSERT INTO p VALUES (?, ?, ?)", [(i, a, b) for i, (a, b) in enumerate(pairs)]
        )
        rows = conn.execute("SELECT jaro_winkler_similarity(a, b) FROM p ORDER BY i").fetchall()
    return [r[0] for r in rows]


def _close(got, want) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= TOLERANCE


def test_generated_pairs_cover_the_cases():
    pairs = generated_pairs()
    assert len(pairs) == 4000 and pairs == generated_pairs()  # deterministic
    assert sum(len(a) > 64 or len(b) > 64 for a, b in pairs) > 300  # code points
    assert sum(not (a + b).isascii() for a, b in pairs) > 100
    values = duckdb_values(pairs)
    assert sum(v >= 0.85 for v in values) > 500 and sum(v < 0.85 for v in values) > 500


def test_a_missing_or_stale_jar_stops_the_engine(tmp_path, monkeypatch):
    jar = tmp_path / "satudata-udf.jar"
    monkeypatch.setattr(spark_engine, "udf_jar_location", lambda: jar)
    with pytest.raises(RuntimeError, match=r"is missing\): run ./scripts/setup.sh --spark"):
        spark_engine.udf_jar()
    jar.write_bytes(b"PK")
    jar.with_suffix(".sha256").write_text("0" * 64 + "\n")
    with pytest.raises(RuntimeError, match=r"another version .* ./scripts/setup.sh --spark"):
        spark_engine.udf_jar()


# --------------------------------------------------------------------------------------------
# On local Spark


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One local Spark session (one core) with Splink's functions registered and then satudata's
    Jaro-Winkler over Splink's, as the engine's SparkLinkage does it."""
    resource = SparkResource(
        engine="spark",
        master="local[1]",
        shuffle_partitions=1,
        spark_dir=str(tmp_path_factory.mktemp("spark-jw")),
    )
    spark = resource.session()
    with duckdb.connect() as conn:
        linkage = spark_engine.SparkLinkage(conn, spark, resource.scratch_dir(), local=True)
        linkage.close()
    yield spark
    spark.stop()


@needs_spark
def test_spark_jaro_winkler_is_duckdbs(session):
    from pyspark.sql.types import DoubleType

    # commons-text's, as Splink registers it, under another name: the pairs must tell them apart
    session.udf.registerJavaFunction(
        "splink_jaro_winkler", "uk.gov.moj.dash.linkage.JaroWinklerSimilarity", DoubleType()
    )
    pairs = all_pairs()
    want = duckdb_values(pairs)
    with duckdb.connect() as conn:  # the address comparison's shape: every word against every word
        conn.execute("CREATE TABLE p (i INTEGER, a VARCHAR, b VARCHAR)")
        conn.executemany(
            "INSERT INTO p VALUES (?, ?, ?)", [(i, a, b) for i, (a, b) in enumerate(pairs)]
        )
        want_words = [
            r[0]
            for r in conn.execute(
                "SELECT list_transform(string_split(a, ' '), lambda x: list_transform("
                "string_split(b, ' '), lambda y: jaro_winkler_similarity(x, y))) FROM p ORDER BY i"
            ).fetchall()
        ]
    df = session.createDataFrame(
        [(i, a, b) for i, (a, b) in enumerate(pairs)], "i INT, a STRING, b STRING"
    )
    df.createOrReplaceTempView("jw_pairs")
    rows = session.sql(
        """
        SELECT i,
               jaro_winkler(a, b) AS direct,
               transform(array(b), y -> jaro_winkler(a, y))[0] AS in_lambda,
               transform(split(a, ' '), x -> transform(split(b, ' '), y -> jaro_winkler(x, y)))
                   AS words,
               splink_jaro_winkler(a, b) AS commons_text
        FROM jw_pairs ORDER BY i
        """
    ).collect()
    assert [r.i for r in rows] == list(range(len(pairs)))

    direct = [i for i, r in enumerate(rows) if not _close(r.direct, want[i])]
    in_lambda = [i for i, r in enumerate(rows) if not _close(r.in_lambda, want[i])]
    # indices only in the messages: no names
    assert not direct, f"{len(direct)} of {len(pairs)} pairs differ from DuckDB, e.g. #{direct[:5]}"
    assert not in_lambda, f"{len(in_lambda)} pairs differ inside a lambda, e.g. #{in_lambda[:5]}"
    words = 0
    for i, r in enumerate(rows):
        if want_words[i] is None:
            assert r.words is None, i
            continue
        assert len(r.words) == len(want_words[i]), i
        for got_row, want_row in zip(r.words, want_words[i]):
            if want_row is None:  # b is NULL
                assert got_row is None, i
                continue
            assert len(got_row) == len(want_row), i
            assert all(_close(g, w) for g, w in zip(got_row, want_row)), f"words of pair #{i}"
            words += len(want_row)
    assert words > len(pairs)
    assert (
        max(abs(r.direct - want[i]) for i, r in enumerate(rows) if want[i] is not None) <= TOLERANCE
    )
    # the test has teeth: Splink's own function disagrees with DuckDB on many of these pairs
    assert (
        sum(
            1
            for i, r in enumerate(rows)
            if want[i] is not None and not _close(r.commons_text, want[i])
        )
        > 100
    )
    assert rows[0].direct == pytest.approx(0.8696969696969697, abs=TOLERANCE)
    assert rows[0].commons_text == pytest.approx(0.853030303030303, abs=TOLERANCE)
