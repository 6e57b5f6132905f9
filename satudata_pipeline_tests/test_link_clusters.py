"""The parts of `clusters._assign_sole_candidates`, each on hand-made tables: which groups look for
a resident, who their candidates are, which group has a sole one, which deaths are only possible,
and how an assignment merges clusters. The whole is exercised by test_link_assets.py and the
end-to-end tests; these tables pin each rule down alone."""

from __future__ import annotations

import duckdb
import pytest
from fixtures.clean_tables import write_clean_table

from satudata_pipeline.link import clusters
from satudata_pipeline.link import splink_settings as ss
from satudata_pipeline.link.matching import build_person_records


def _conn(cc_main: list[tuple[str, str]], kinds: dict[str, str] | None = None):
    """A connection with `_cc_main(unique_id, cluster_id)` and, when given, a minimal
    `link.person_records(unique_id, kind)`."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    conn.execute("CREATE TEMP TABLE _cc_main (unique_id VARCHAR, cluster_id VARCHAR)")
    if cc_main:
        conn.executemany("INSERT INTO _cc_main VALUES (?, ?)", cc_main)
    if kinds is not None:
        conn.execute("CREATE TABLE link.person_records (unique_id VARCHAR, kind VARCHAR)")
        conn.executemany("INSERT INTO link.person_records VALUES (?, ?)", list(kinds.items()))
    return conn


CANDIDATE_COLUMNS = (
    "unique_id VARCHAR, kind VARCHAR, lone_cluster VARCHAR, resident_unique_id VARCHAR, "
    "basis VARCHAR, match_probability DOUBLE, match_weight DOUBLE, resident_cluster VARCHAR, "
    "home_group BOOLEAN"
)


def _with_candidates(conn, rows: list[tuple]):
    """`_sc_candidates` from rows (unique_id, kind, lone_cluster, resident_unique_id, basis,
    match_probability, resident_cluster[, match_weight]); a group is a home group when all its rows
    are of SOLE_LINK_SAME_HOME_KINDS."""
    conn.execute(f"CREATE TEMP TABLE _sc_candidates ({CANDIDATE_COLUMNS})")
    home = {}
    for r in rows:
        home[r[2]] = home.get(r[2], True) and r[1] in ss.SOLE_LINK_SAME_HOME_KINDS
    full = [(*r[:6], r[7] if len(r) > 7 else None, r[6], home[r[2]]) for r in rows]
    if full:
        conn.executemany("INSERT INTO _sc_candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", full)
    return conn


# ---- _find_lone_groups ---------------------------------------------------------------------
LONE_CASES = [
    # (records: {uid: (cluster, kind)}, expected lone records, expected clusters with a death)
    (
        {"c:1": ("A", "civil_registry"), "k:1": ("A", "program_roster")},
        [],
        [],
    ),
    (
        {"c:1": ("A", "civil_registry"), "k:1": ("B", "program_roster")},
        [("k:1", "B")],
        [],
    ),
    (
        {
            "c:1": ("A", "civil_registry"),
            "d:1": ("A", "death_registry"),
            "d:2": ("B", "death_registry"),
            "w:2": ("B", "welfare_registry"),
        },
        [("d:2", "B"), ("w:2", "B")],
        ["A", "B"],
    ),  # fmt: skip
]


@pytest.mark.parametrize(("records", "lone", "with_death"), LONE_CASES)
def test_lone_groups_are_the_clusters_without_a_civil_record(records, lone, with_death):
    conn = _conn([(u, c) for u, (c, _) in records.items()], {u: k for u, (_, k) in records.items()})
    clusters._find_lone_groups(conn)
    assert conn.execute("SELECT * FROM _sc_lone ORDER BY ALL").fetchall() == lone
    dead = conn.execute("SELECT cluster_id FROM _sc_clusters WHERE has_death ORDER BY 1")
    assert [c for (c,) in dead.fetchall()] == with_death


# ---- _decide_sole_candidates ---------------------------------------------------------------
def _link(uid, resident_cluster, weight, p=1.0, kind="program_roster"):
    """A link candidate of group L1 to resident record c:<n> of cluster R<n>, with its weight."""
    return (uid, kind, "L1", "c:" + resident_cluster[1:], "link", p, resident_cluster, weight)


SOLE_CASES = [
    # (candidates, expected assignments (unique_id, resident_cluster, resident_unique_id, basis, p))
    pytest.param(
        [("k:1", "program_roster", "L1", "c:1", "link", 0.97, "R1")],
        [("k:1", "R1", "c:1", "link", 0.97)],
        id="one link, one resident",
    ),
    pytest.param(
        [
            ("k:1", "program_roster", "L1", "c:1", "link", 0.97, "R1"),
            ("k:1", "program_roster", "L1", "c:2", "link", 0.99, "R1"),
        ],
        [("k:1", "R1", "c:2", "link", 0.99)],
        id="two records of one resident: the strongest link's",
    ),
    pytest.param(
        [
            ("k:1", "program_roster", "L1", "c:2", "link", 0.98, "R1"),
            ("k:1", "program_roster", "L1", "c:1", "link", 0.98, "R1"),
        ],
        [("k:1", "R1", "c:1", "link", 0.98)],
        id="a tie: the smallest resident id",
    ),
    pytest.param(
        [
            ("d:1", "death_registry", "L1", "c:1", "name_in_kelurahan", None, "R1"),
            ("d:1", "death_registry", "L1", "c:2", "name_in_kelurahan", None, "R2"),
        ],
        [],
        id="two residents: nobody is assigned",
    ),
    pytest.param(
        [
            ("d:1", "death_registry", "L1", "c:1", "name_in_kelurahan", None, "R1"),
            ("k:9", "program_roster", "L1", "c:2", "link", 0.99, "R2"),
        ],
        [],
        id="the group's records point at two residents together",
    ),
    pytest.param(
        [
            ("w:1", "welfare_registry", "L1", "c:1", "name_at_home", None, "R1"),
            ("w:2", "welfare_registry", "L2", "c:1", "name_at_home", None, "R1"),
        ],
        [("w:1", "R1", "c:1", "name_at_home", None), ("w:2", "R1", "c:1", "name_at_home", None)],
        id="two groups may share their sole resident",
    ),
    pytest.param(
        [_link("k:1", "R1", 29.6), _link("k:1", "R2", 17.3)],
        [("k:1", "R1", "c:1", "dominant_link", 1.0)],
        id="two residents of its home, one favoured a thousand to one: placed with it",
    ),
    pytest.param(
        [_link("k:1", "R1", 25.5), _link("k:1", "R2", 17.3)],
        [],
        id="favoured by less than the margin: nobody is assigned",
    ),
    pytest.param(
        [_link("k:1", "R1", 40.0), _link("k:1", "R2", 17.3), _link("k:1", "R3", 30.5)],
        [],
        id="the margin is over the runner-up, not the weakest",
    ),
    pytest.param(
        [_link("k:1", "R1", 40.0), _link("d:1", "R2", 17.3, kind="death_registry")],
        [],
        id="a group holding a death record is never placed by margin",
    ),
    pytest.param(
        [
            _link("w:1", "R1", 40.0, kind="welfare_registry"),
            _link("k:1", "R2", 17.3),
            _link("k:1", "R1", 5.0, p=0.97),
        ],
        [("k:1", "R1", "c:1", "dominant_link", 0.97), ("w:1", "R1", "c:1", "dominant_link", 1.0)],
        id="a group's links together: its strongest to each resident",
    ),
]


@pytest.mark.parametrize(("candidates", "expected"), SOLE_CASES)
def test_a_group_is_assigned_only_to_its_sole_candidate(candidates, expected):
    conn = _with_candidates(_conn([]), candidates)
    clusters._decide_sole_candidates(conn)
    assert (
        conn.execute(
            "SELECT unique_id, resident_cluster, resident_unique_id, basis, match_probability "
            "FROM _sc_assign ORDER BY unique_id"
        ).fetchall()
        == expected
    )


# ---- _record_possible_deaths ---------------------------------------------------------------
def _death(uid, cluster, resident, resident_cluster, kind="death_registry"):
    return (uid, kind, cluster, resident, "name_in_kelurahan", None, resident_cluster)


MAX = int(ss.POSSIBLE_DEATH_MAX_CANDIDATES)
POSSIBLE_CASES = [
    pytest.param(
        [_death("d:1", "L1", "c:1", "R1")], [], id="one candidate: assigned, not possible"
    ),
    pytest.param(
        [_death("d:1", "L1", "c:1", "R1"), _death("d:1", "L1", "c:2", "R2")],
        [("d:1", "c:1", 2), ("d:1", "c:2", 2)],
        id="two candidates: both possible",
    ),
    pytest.param(
        [_death("d:1", "L1", f"c:{i}", f"R{i}") for i in range(MAX + 1)],
        [],
        id="more than the limit: says nothing about anyone",
    ),
    pytest.param(
        [
            _death("d:1", "L1", "c:2", "R1"),
            _death("d:1", "L1", "c:1", "R1"),
            _death("d:1", "L1", "c:3", "R2"),
        ],
        [("d:1", "c:1", 2), ("d:1", "c:3", 2)],
        id="one line per resident cluster (its smallest record)",
    ),  # fmt: skip
    pytest.param(
        [
            _death("m:1", "L1", "c:1", "R1", kind="migration_registry"),
            _death("m:1", "L1", "c:2", "R2", kind="migration_registry"),
        ],
        [],
        id="only deaths",
    ),
]


@pytest.mark.parametrize(("candidates", "expected"), POSSIBLE_CASES)
def test_a_death_with_a_few_candidates_is_a_possible_death_of_each(candidates, expected):
    conn = _with_candidates(_conn([]), candidates)
    listed = clusters._record_possible_deaths(conn)
    assert conn.execute("SELECT * FROM link.possible_deaths").fetchall() == expected
    assert listed == len({u for u, _, _ in expected})


# ---- _apply_assignments --------------------------------------------------------------------
APPLY_CASES = [
    # (_cc_main, _sc_lone, _sc_assign rows (unique_id, lone, resident_cluster, resident_uid),
    #  expected _cc_main, expected assigned)
    pytest.param(
        [("c:1", "A"), ("k:1", "B")],
        [("k:1", "B")],
        [("k:1", "B", "A", "c:1")],
        [("c:1", "A"), ("k:1", "A")],
        1,
        id="the lone group joins the resident's cluster",
    ),
    pytest.param(
        [("c:1", "B"), ("k:1", "A"), ("k:2", "A")],
        [("k:1", "A"), ("k:2", "A")],
        [("k:1", "A", "B", "c:1")],
        [("c:1", "A"), ("k:1", "A"), ("k:2", "A")],
        2,
        id="the smallest cluster id wins; the whole group moves",
    ),
    pytest.param(
        [("c:1", "C"), ("k:1", "A"), ("w:1", "B"), ("x:1", "D")],
        [("k:1", "A"), ("w:1", "B"), ("x:1", "D")],
        [("k:1", "A", "C", "c:1"), ("w:1", "B", "C", "c:1")],
        [("c:1", "A"), ("k:1", "A"), ("w:1", "A"), ("x:1", "D")],
        2,
        id="two groups of one resident become one cluster; unassigned groups stay",
    ),
]


@pytest.mark.parametrize(("cc_main", "lone", "assign", "expected", "assigned"), APPLY_CASES)
def test_assignments_merge_the_group_into_the_residents_cluster(
    cc_main, lone, assign, expected, assigned
):
    conn = _conn(cc_main)
    conn.execute("CREATE TEMP TABLE _sc_lone (unique_id VARCHAR, lone_cluster VARCHAR)")
    conn.executemany("INSERT INTO _sc_lone VALUES (?, ?)", lone)
    conn.execute(
        "CREATE TEMP TABLE _sc_assign (unique_id VARCHAR, lone_cluster VARCHAR, "
        "resident_cluster VARCHAR, resident_unique_id VARCHAR, basis VARCHAR, "
        "match_probability DOUBLE)"
    )
    conn.executemany(
        "INSERT INTO _sc_assign VALUES (?, ?, ?, ?, 'link', 0.99)", [tuple(a) for a in assign]
    )
    assert clusters._apply_assignments(conn) == assigned
    assert conn.execute("SELECT * FROM _cc_main ORDER BY ALL").fetchall() == expected
    audit = conn.execute(
        "SELECT unique_id, resident_unique_id, cluster_id FROM link.assignments"
    ).fetchall()
    new = dict(expected)
    assert audit == [(u, r, new[u]) for u, _, _, r in sorted(assign)]


# ---- _find_candidates ----------------------------------------------------------------------
K = "31.71.01.1001"
CIVIL = [
    {"record_id": "1", "nama": "SITI AMINAH", "jenis_kelamin": "P", "kode_kelurahan": K,
     "tanggal_lahir": "1950-03-04"},
    {"record_id": "2", "nama": "SITI AMINAH", "jenis_kelamin": "P", "kode_kelurahan": K,
     "tanggal_lahir": "1962-07-08"},
    {"record_id": "3", "nama": "BUDI SANTOSO", "jenis_kelamin": "L", "kode_kelurahan": K,
     "tanggal_lahir": "1970-01-01"},
]  # fmt: skip


def _candidates_with_links(conn, pairs: list[tuple[str, str, float]]) -> list[tuple]:
    """Store `pairs` (probabilistic links, the same probability with and without the NIK) as
    link.match_pairs over the records and clusters already on `conn`, find the lone groups and
    their candidates; returns the candidates (unique_id, resident, basis)."""
    conn.execute("""CREATE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR,
                    match_probability DOUBLE, match_probability_without_nik DOUBLE,
                    link_method VARCHAR)""")
    if pairs:
        conn.executemany(
            "INSERT INTO link.match_pairs VALUES (?, ?, ?, ?, 'probabilistic')",
            [(a, b, p, p) for a, b, p in pairs],
        )
    clusters._find_lone_groups(conn)
    clusters._find_candidates(conn)
    return conn.execute(
        "SELECT unique_id, resident_unique_id, basis FROM _sc_candidates ORDER BY ALL"
    ).fetchall()


def _records(deaths: list[dict], pairs: list[tuple[str, str, float]], dead_residents=()):
    """Civil residents CIVIL and the given death rows as link.person_records, every record its own
    cluster (a resident in `dead_residents` shares a cluster with an extra death record)."""
    conn = duckdb.connect()
    write_clean_table(conn, "penduduk", [{**r, "kind": "civil_registry"} for r in CIVIL])
    extra = [
        {"record_id": f"x{uid}", "nama": "X", "kode_kelurahan": K, "kind": "death_registry"}
        for uid in dead_residents
    ]
    write_clean_table(conn, "kematian", [{**r, "kind": "death_registry"} for r in deaths] + extra)
    build_person_records(conn, ["penduduk", "kematian"])
    conn.execute("""CREATE TEMP TABLE _cc_main AS SELECT unique_id, unique_id AS cluster_id
                    FROM link.person_records""")
    for uid in dead_residents:
        conn.execute(
            "UPDATE _cc_main SET cluster_id = ? WHERE unique_id = ?", [uid, f"kematian:x{uid}"]
        )
    return _candidates_with_links(conn, pairs)


def test_candidates_by_name_in_the_kelurahan():
    death = {"record_id": "9", "nama": "SITI AMINAH", "jenis_kelamin": "P", "kode_kelurahan": K}
    assert _records([death], []) == [
        ("kematian:9", "penduduk:1", "name_in_kelurahan"),
        ("kematian:9", "penduduk:2", "name_in_kelurahan"),
    ]


def test_a_link_outranks_every_name_candidate_of_its_group():
    death = {"record_id": "9", "nama": "SITI AMINAH", "jenis_kelamin": "P", "kode_kelurahan": K}
    assert _records([death], [("kematian:9", "penduduk:3", 0.96)]) == [
        ("kematian:9", "penduduk:3", "link")
    ]


def test_a_resident_already_dead_is_no_candidate_for_another_death():
    death = {"record_id": "9", "nama": "SITI AMINAH", "jenis_kelamin": "P", "kode_kelurahan": K}
    assert _records([death], [], dead_residents=["penduduk:1"]) == [
        ("kematian:9", "penduduk:2", "name_in_kelurahan")
    ]


def test_a_birth_date_that_disagrees_rules_a_namesake_out():
    death = {"record_id": "9", "nama": "SITI AMINAH", "jenis_kelamin": "P", "kode_kelurahan": K,
             "tanggal_lahir": "1962-07-08"}  # fmt: skip
    assert _records([death], []) == [("kematian:9", "penduduk:2", "name_in_kelurahan")]


# ---- only-links: each the other's only candidate, homes apart --------------------------------
HOME_A = {"alamat": "JL MAWAR NO 5", "kode_kelurahan": K}
HOME_B = {"alamat": "JL MELATI NO 17", "kode_kelurahan": "31.71.01.1002"}
RESIDENTS = [
    {"record_id": "1", "nama": "SITI AMINAH", "tanggal_lahir": "1950-03-04", **HOME_A},
    {"record_id": "2", "nama": "BUDI SANTOSO", "tanggal_lahir": "1970-01-01", **HOME_A},
]


def _only_link_candidates(
    welfare: list[dict],
    pairs: list[tuple[str, str, float]],
    welfare_in_cluster_of=None,
    deaths=(),
    together=(),
    residents=RESIDENTS,
):
    """Residents RESIDENTS, welfare rows `welfare` (source dtks), death rows `deaths` (source
    kematian), the stored links `pairs`; every record its own cluster, except an extra dtks row put
    in the cluster of resident `welfare_in_cluster_of` and the records of `together` (one cluster).
    Returns the candidates (unique_id, resident, basis)."""
    conn = duckdb.connect()
    write_clean_table(conn, "penduduk", [{**r, "kind": "civil_registry"} for r in residents])
    extra = [{"record_id": "x", "nama": "X", **HOME_A}] if welfare_in_cluster_of else []
    write_clean_table(conn, "dtks", [{**r, "kind": "welfare_registry"} for r in welfare + extra])
    write_clean_table(conn, "kematian", [{**r, "kind": "death_registry"} for r in deaths])
    build_person_records(conn, ["penduduk", "dtks", "kematian"])
    conn.execute("""CREATE TEMP TABLE _cc_main AS SELECT unique_id, unique_id AS cluster_id
                    FROM link.person_records""")
    if welfare_in_cluster_of:
        conn.execute(
            "UPDATE _cc_main SET cluster_id = ? WHERE unique_id = 'dtks:x'", [welfare_in_cluster_of]
        )
    for uid in together:
        conn.execute("UPDATE _cc_main SET cluster_id = ? WHERE unique_id = ?", [together[0], uid])
    return _candidates_with_links(conn, pairs)


SITI_ELSEWHERE = {"record_id": "9", "nama": "SITI AMINA", "tanggal_lahir": "1950-03-04", **HOME_B}
ONLY_LINK_CASES = [
    pytest.param(
        [SITI_ELSEWHERE], [("dtks:9", "penduduk:1", 0.8)], {},
        [("dtks:9", "penduduk:1", "only_link")],
        id="each the other's only link, homes apart: a candidate, placed not identified",
    ),
    pytest.param(
        [{**SITI_ELSEWHERE, **HOME_A}], [("dtks:9", "penduduk:1", 0.8)], {},
        [("dtks:9", "penduduk:1", "link")],
        id="the same home: an ordinary link candidate",
    ),
    pytest.param(
        [SITI_ELSEWHERE], [("dtks:9", "penduduk:1", 0.45)], {},
        [],
        id="below the only-link probability: no candidate",
    ),
    pytest.param(
        [SITI_ELSEWHERE], [("dtks:9", "penduduk:1", 0.8), ("dtks:9", "penduduk:2", 0.6)], {},
        [],
        id="the row links to two residents: no only-link",
    ),
    pytest.param(
        [SITI_ELSEWHERE, {**SITI_ELSEWHERE, "record_id": "8"}],
        [("dtks:9", "penduduk:1", 0.8), ("dtks:8", "penduduk:1", 0.7)], {},
        [],
        id="the resident links to two rows of the source: neither is its only one",
    ),
    pytest.param(
        [SITI_ELSEWHERE], [("dtks:9", "penduduk:1", 0.8)], {"welfare_in_cluster_of": "penduduk:1"},
        [],
        id="the resident's person already holds a row of the source",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("welfare", "pairs", "extra", "expected"), ONLY_LINK_CASES)
def test_only_links_join_two_homes_only_when_each_is_the_others_only_candidate(
    welfare, pairs, extra, expected
):
    assert _only_link_candidates(welfare, pairs, **extra) == expected


def test_an_only_link_places_no_group_holding_a_death_record():
    # a death record in the welfare row's group would follow the row to the resident
    death = {"record_id": "7", "nama": "NOBODY HERE", "kode_kelurahan": K}
    kwargs = {"deaths": [death], "together": ("dtks:9", "kematian:7")}
    assert _only_link_candidates([SITI_ELSEWHERE], [("dtks:9", "penduduk:1", 0.8)], **kwargs) == []
    # the same group without the death record is placed
    assert _only_link_candidates([SITI_ELSEWHERE], [("dtks:9", "penduduk:1", 0.8)]) == [
        ("dtks:9", "penduduk:1", "only_link")
    ]


def test_no_only_links_where_niks_are_the_norm():
    # residents carry valid NIKs (the delivery has identifiers): a row without one that names a
    # resident of another home is as often a copy of that resident as the resident
    with_nik = [
        {**r, "nik": f"317101010150000{i}", "nik_valid": True} for i, r in enumerate(RESIDENTS, 1)
    ]
    pair = [("dtks:9", "penduduk:1", 0.8)]
    assert _only_link_candidates([SITI_ELSEWHERE], pair, residents=with_nik) == []
    assert _only_link_candidates([SITI_ELSEWHERE], pair) == [("dtks:9", "penduduk:1", "only_link")]


def test_the_rows_of_a_group_placed_without_identification_carry_its_basis():
    conn = _conn([("c:1", "C"), ("k:1", "A"), ("w:1", "A")])
    conn.execute("CREATE TEMP TABLE _sc_lone (unique_id VARCHAR, lone_cluster VARCHAR)")
    conn.executemany("INSERT INTO _sc_lone VALUES (?, ?)", [("k:1", "A"), ("w:1", "A")])
    conn.execute(
        "CREATE TEMP TABLE _sc_assign (unique_id VARCHAR, lone_cluster VARCHAR, "
        "resident_cluster VARCHAR, resident_unique_id VARCHAR, basis VARCHAR, "
        "match_probability DOUBLE)"
    )
    conn.execute("INSERT INTO _sc_assign VALUES ('w:1', 'A', 'C', 'c:1', 'only_link', 0.8)")
    assert clusters._apply_assignments(conn) == 2
    audit = conn.execute(
        "SELECT unique_id, resident_unique_id, basis, cluster_id FROM link.assignments ORDER BY 1"
    ).fetchall()
    assert audit == [("k:1", "c:1", "only_link", "A"), ("w:1", "c:1", "only_link", "A")]
