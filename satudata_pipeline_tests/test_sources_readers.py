"""Reading deliveries as real providers send them: encodings, BOMs, delimiters, broken lines, xlsx, parquet."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from satudata_pipeline.contract.sources import check_files, parse_delivery
from satudata_pipeline.sources.readers import PARSE_ERROR, ROW_NUMBER, read_source

PROGRAMS = {"KJP"}


def delivery_with(tmp_path, filename: str, content: bytes | None = None, **spec):
    data = tmp_path / "d"
    data.mkdir(exist_ok=True)
    if content is not None:
        (data / filename).write_bytes(content)
    source = {
        "name": "src",
        "kind": "civil_registry",
        "path": filename,
        "extracted_at": "2026-10-30",
        "columns": {"record_id": "ID", "nama": "NAMA"},
        **spec,
    }
    (data / "sources.yaml").write_text(
        yaml.safe_dump({"snapshot_date": "2026-11-01", "sources": [source]})
    )
    delivery = parse_delivery(data, PROGRAMS)
    check_files(delivery)
    return delivery, delivery.source("src")


def as_rows(table):
    return table.to_pandas()


def test_bom_is_not_part_of_the_first_header(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", "\ufeffID,NAMA\n1,Siti\n".encode("utf-8"))
    df = as_rows(read_source(d, s))
    assert list(df.columns[:2]) == ["ID", "NAMA"]
    assert df["NAMA"].tolist() == ["Siti"]


def test_semicolon_is_detected_and_declared(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", b"ID;NAMA\n1;Siti\n2;Budi\n")
    assert as_rows(read_source(d, s))["NAMA"].tolist() == ["Siti", "Budi"]
    d, s = delivery_with(tmp_path, "a.csv", b"ID;NAMA\n1;Siti, S.Pd\n", delimiter=";")
    assert as_rows(read_source(d, s))["NAMA"].tolist() == ["Siti, S.Pd"]


def test_latin1_declared_reads_accents(tmp_path):
    d, s = delivery_with(
        tmp_path, "a.csv", "ID,NAMA\n1,Andr\u00e9\n".encode("latin-1"), encoding="latin-1"
    )
    assert as_rows(read_source(d, s))["NAMA"].tolist() == ["Andr\u00e9"]


def test_truncated_last_line_is_kept_with_a_parse_error(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", b"ID,NAMA,NIK\n1,Siti,317\n2,Bu")
    df = as_rows(read_source(d, s))
    assert df[ROW_NUMBER].tolist() == [1, 2]
    assert df[PARSE_ERROR].isna().tolist() == [True, False]
    assert "expected 3 fields, found 2" in df[PARSE_ERROR].iloc[1]


def test_header_only_file_gives_no_rows(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", b"ID,NAMA\n")
    assert read_source(d, s).num_rows == 0


def test_values_stay_text_exactly_as_delivered(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", b"ID,NAMA,NIK\n007,Siti,3.17101E+15\n")
    df = as_rows(read_source(d, s))
    assert df["ID"].tolist() == ["007"] and df["NIK"].tolist() == ["3.17101E+15"]


def test_xlsx_native_cells_become_text(tmp_path):
    path = tmp_path / "roster.xlsx"
    pd.DataFrame(
        {
            "ID": [1, 2],
            "NAMA": ["Siti", "Budi"],
            "NIK": [3171014501900001, None],
            "TGL": [dt.datetime(1990, 1, 5), dt.datetime(2001, 2, 3)],
        }
    ).to_excel(path, index=False)
    tmp_data = tmp_path / "d"
    tmp_data.mkdir()
    path.rename(tmp_data / "roster.xlsx")
    d, s = delivery_with(tmp_path, "roster.xlsx")
    df = as_rows(read_source(d, s))
    assert df["ID"].tolist() == ["1", "2"]
    assert df["NIK"].tolist()[0] == "3171014501900001"
    assert df["TGL"].tolist() == ["1990-01-05", "2001-02-03"]


def test_parquet_native_types_become_text(tmp_path):
    tmp_data = tmp_path / "d"
    tmp_data.mkdir()
    pd.DataFrame(
        {
            "ID": ["a1", "a2"],
            "NAMA": ["Siti", None],
            "DESIL": [3, 4],
            "TGL": pd.to_datetime(["1990-01-05", "2001-02-03"]).date,
        }
    ).to_parquet(tmp_data / "w.parquet")
    d, s = delivery_with(tmp_path, "w.parquet")
    df = as_rows(read_source(d, s))
    assert df["DESIL"].tolist() == ["3", "4"]
    assert df["TGL"].tolist() == ["1990-01-05", "2001-02-03"]
    assert df["NAMA"].isna().tolist() == [False, True]


def test_unmapped_duplicate_headers_are_renamed_not_fatal(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", b"ID,NAMA,X,X,\n1,Siti,a,b,c\n")
    df = as_rows(read_source(d, s))
    assert [c for c in df.columns if not c.startswith("_")] == [
        "ID",
        "NAMA",
        "X",
        "X__2",
        "column_5",
    ]


@pytest.mark.parametrize("blank", [b"", b"   "])
def test_blank_lines_are_not_rows(tmp_path, blank):
    d, s = delivery_with(tmp_path, "a.csv", b"ID,NAMA\n1,Siti\n" + blank + b"\n2,Budi\n")
    assert as_rows(read_source(d, s))["ID"].tolist() == ["1", "2"]


def test_headers_differing_only_in_case_keep_the_mapped_one(tmp_path):
    d, s = delivery_with(tmp_path, "a.csv", b"ID,Nama,NAMA\n1,x,Siti\n")
    s = s.model_copy(update={"columns": {"record_id": "ID", "nama": "NAMA"}})
    df = as_rows(read_source(d, s))
    assert df["NAMA"].tolist() == ["Siti"]
    assert df["Nama__2"].tolist() == ["x"]


# Arrow's reader takes plain files, Python's csv module everything from the first batch that is not
# plain: the rows, their numbers, lines, parse errors and the file's statistics must not depend on
# which one read them. (file bytes, encoding, the reader expected)
READER_CASES = {
    "plain": (b"ID,NAMA\n1,Siti\n2,Budi\n", "utf-8", "arrow"),
    "crlf and empty cells": (b"ID,NAMA\r\n1,\r\n,Budi\r\n", "utf-8", "arrow"),
    "quoted comma": (b'ID,NAMA\n1,"Siti, S.Pd"\n', "utf-8", "arrow"),
    "no final line break": (b"ID,NAMA\n1,Siti\n2,Budi", "utf-8", "arrow"),
    "bom": ("\ufeffID,NAMA\n1,Siti\n".encode(), "utf-8", "arrow"),
    "latin-1": ("ID,NAMA\n1,Andr\u00e9\n".encode("latin-1"), "latin-1", "arrow"),
    "semicolon": (b"ID;NAMA\n1;Siti\n", "utf-8", "arrow"),
    "header only": (b"ID,NAMA\n", "utf-8", "arrow"),
    "bare CR line ends": (b"ID,NAMA\r1,Siti\r2,Budi\r", "utf-8", "arrow"),
    "quoted header and cells": (b'"ID","NAMA"\n"1","Siti"\n', "utf-8", "arrow"),
    "quote opening in the header": (
        b'ID,NAMA,"KET\n1,Siti,x\n2,Budi,y"\n3,Ani,z\n',
        "utf-8",
        "python",
    ),
    "header without line break": (b"ID,NAMA", "utf-8", "python"),
    "escaped quote": (b'ID,NAMA\n1,"Siti ""Ani"""\n', "utf-8", "python"),
    "stray quote": (b'ID,NAMA\n1,Si"ti\n2,Budi\n', "utf-8", "python"),
    "quoted line break": (b'ID,NAMA\n1,"Siti\nAminah"\n2,Budi\n', "utf-8", "python"),
    "unclosed quote": (b'ID,NAMA\n1,Siti\n2,"Budi\n3,Ani\n', "utf-8", "python"),
    "blank line": (b"ID,NAMA\n1,Siti\n\n2,Budi\n", "utf-8", "python"),
    "spaces line": (b"ID,NAMA\n1,Siti\n   \n2,Budi\n", "utf-8", "python"),
    "row of empty cells": (b"ID,NAMA\n1,Siti\n,\n", "utf-8", "python"),
    "too many fields": (b"ID,NAMA\n1,Siti,x\n2,Budi\n", "utf-8", "python"),
    "cut last line": (b"ID,NAMA,ALAMAT\n1,Siti,JL A\n2,Bu", "utf-8", "python"),
    "invalid utf-8": (b"ID,NAMA\n" + b"1,Siti\n" * 20_000 + b"2,\xff\n", "utf-8", "python"),
}


@pytest.mark.parametrize("case", list(READER_CASES))
def test_arrow_and_python_readers_give_the_same_rows(tmp_path, case):
    from satudata_pipeline.sources.readers import SourceBatches

    content, encoding, expected = READER_CASES[case]
    d, s = delivery_with(tmp_path, "a.csv", content, encoding=encoding)
    fast = SourceBatches(d, s)
    try:
        fast_table = pa.concat_tables(list(fast))
    except Exception as exc:  # the Python reader's error, whichever reader started
        with pytest.raises(type(exc)):
            list(SourceBatches(d, s)._csv_python())
        assert expected == "python"
        return
    slow = SourceBatches(d, s)
    slow_table = pa.concat_tables(list(slow._csv_python()))
    assert fast_table.equals(slow_table)
    assert fast.stats == slow.stats
    assert (fast.reader == "arrow") == (expected == "arrow"), fast.reader


def test_arrow_hands_over_to_python_from_the_first_batch_that_is_not_plain(tmp_path):
    """Batches of 2 rows: the first two come from Arrow, the rest (a quoted line break in row 4)
    from Python, numbered on: no row twice, none lost."""
    from satudata_pipeline.sources.readers import SourceBatches

    content = b'ID,NAMA\n1,A\n2,B\n3,C\n4,"D\nE"\n5,F\n'
    d, s = delivery_with(tmp_path, "a.csv", content)
    batches = SourceBatches(d, s, batch_rows=2)
    tables = list(batches)
    assert batches.reader == "arrow+python"
    table = pa.concat_tables(tables)
    assert table.column("ID").to_pylist() == ["1", "2", "3", "4", "5"]
    assert table.column(ROW_NUMBER).to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("_line_number").to_pylist() == [2, 3, 4, 5, 7]
    assert batches.stats.multiline_rows == 1 and batches.stats.physical_records == 6
    assert [t.num_rows for t in tables] == [2, 2, 1]
