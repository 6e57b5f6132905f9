"""The reports server `satudata ui` runs so the UI's metadata links open the charts (issue 19)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from satudata_pipeline import config, report_server


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path / "state"))
    run = config.run_reports_dir("run-1")
    (run / "match_weights_chart.html").write_text("<html>weights</html>", encoding="utf-8")
    (tmp_path / "state" / "warehouse.duckdb").write_text("not for the browser")
    server = report_server.start(config.reports_dir(), "127.0.0.1", 0)
    yield server.server_address[1]
    server.shutdown()


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", dict(exc.headers)


def test_the_link_in_the_metadata_opens_the_chart(reports, monkeypatch):
    monkeypatch.setenv("SATUDATA_REPORTS_PORT", str(reports))
    chart = config.run_reports_dir("run-1") / "match_weights_chart.html"
    url = config.report_url(chart)
    assert url == f"http://127.0.0.1:{reports}/runs/run-1/match_weights_chart.html"
    status, body, headers = _get(url)
    assert status == 200 and body == b"<html>weights</html>"
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/runs/",
        "/runs/run-1/",
        "/../warehouse.duckdb",
        "/%2e%2e/warehouse.duckdb",
        "/nope.html",
    ],
)
def test_no_listing_and_nothing_outside_the_reports_folder(reports, path):
    status, body, _ = _get(f"http://127.0.0.1:{reports}{path}")
    assert status == 404 and b"not for the browser" not in body


def test_behind_a_proxy_the_links_use_its_address(tmp_path, monkeypatch):
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SATUDATA_REPORTS_URL", "https://satudata.example.go.id/satudata-reports/")
    page = config.run_reports_dir("run 2") / "run_summary.html"
    assert config.report_url(page) == (
        "https://satudata.example.go.id/satudata-reports/runs/run2/run_summary.html"
    )
    assert config.report_url(tmp_path / "elsewhere.html") is None
