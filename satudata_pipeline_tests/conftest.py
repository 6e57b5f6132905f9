"""Shared fixtures: a tiny hand-written delivery, and isolated state/warehouse folders for every test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Never let a test write into the developer's .state folder."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(state))
    monkeypatch.delenv("SATUDATA_WAREHOUSE", raising=False)
    monkeypatch.delenv("SATUDATA_RETRAIN", raising=False)
    monkeypatch.delenv("SATUDATA_FULL_RELINK", raising=False)
    return state


TINY_YAML = """\
snapshot_date: 2026-11-01
sources:
  - name: penduduk
    kind: civil_registry
    path: penduduk.csv
    extracted_at: 2026-10-28
    freshness_days: 35
    date_format: "%d-%m-%Y"
    columns:
      record_id: ID
      nik: NIK
      nama: NAMA_LGKP
      jenis_kelamin: JK
      tanggal_lahir: TGL_LHR
      kelurahan: KEL
      kecamatan: KEC
      kota: KOTA
    values:
      jenis_kelamin: {LAKI-LAKI: L, PEREMPUAN: P}
"""

TINY_CSV = """\
ID,NIK,NAMA_LGKP,JK,TGL_LHR,KEL,KEC,KOTA,EXTRA
1,3171014501900001,Siti Aminah,PEREMPUAN,05-01-1990,Gambir,Gambir,Jakarta Pusat,x
2,3171010101850002,H. Moh. Djoko,LAKI-LAKI,01-01-1985,Cideng,Gambir,Jakarta Pusat,y
3,,Budi,LAKI-LAKI,31-02-2001,Kelurahan Entah,Gambir,Jakarta Pusat,z
4,3171010101850003,,LAKI-LAKI,01-01-1985,Cideng,Gambir,Jakarta Pusat,
5,3171010101850004,Dup Id,LAKI-LAKI,01-01-1985,Cideng,Gambir,Jakarta Pusat,
5,3171010101850005,Dup Id Kedua,LAKI-LAKI,01-01-1985,Cideng,Gambir,Jakarta Pusat,
"""


@pytest.fixture
def tiny_delivery(tmp_path: Path) -> Path:
    """A one-source data directory: good rows, a bad date, a blank name, a duplicate id."""
    data = tmp_path / "delivery"
    data.mkdir()
    (data / "sources.yaml").write_text(TINY_YAML)
    (data / "penduduk.csv").write_text(TINY_CSV)
    return data


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path
