"""GDC client against the double: envelopes, pagination, filters, retries, back-off and the token."""

from __future__ import annotations

import json
import math
import time

import pytest
import requests

from gliofuse.errors import ConfigError
from gliofuse.gdc.client import GdcClient, GdcError, RetryPolicy, load_token, parse_retry_after
from gliofuse.gdc.query import SLIDE_FIELDS, and_, in_, slide_filters
from tests.fakes.gdc_double import BadRequest, match_filter, pagination, project


def _slides_total(double) -> int:
    return sum(1 for f in double.files if f["data_format"] == "SVS")


def test_status(client):
    assert client.status()["status"] == "OK"


def test_envelope_and_pagination_exactly_as_gdc(gdc_double):
    total = len(gdc_double.files)
    resp = requests.post(f"{gdc_double.url}/files", json={"fields": "file_name", "size": "3", "from": "3"}, timeout=10)
    body = resp.json()
    assert set(body) == {"data", "warnings"} and body["warnings"] == {}
    assert set(body["data"]) == {"hits", "pagination"}
    assert body["data"]["pagination"] == {"count": 3, "total": total, "size": 3, "from": 3, "sort": "",
                                          "page": 2, "pages": math.ceil(total / 3)}
    for hit in body["data"]["hits"]:
        assert set(hit) == {"id", "file_name"}  # id is always there, even when not requested
    # the documented example: from=101,size=5 -> page 21
    assert pagination(931947, 5, 101, 5, "")["page"] == 21
    assert pagination(931947, 2, 0, 2, "")["pages"] == 465974


def test_pagination_collects_every_page(client, gdc_double):
    n = _slides_total(gdc_double)
    hits = client.query_all("files", filters=slide_filters(["TCGA-GBM", "TCGA-LGG"]), fields=SLIDE_FIELDS,
                            page_size=3)
    assert len(hits) == n and len({h["id"] for h in hits}) == n
    assert gdc_double.count("POST", "/files") == math.ceil(n / 3)
    offsets = [json.loads(r.body)["from"] for r in gdc_double.requests if r.path == "/files"]
    assert offsets == list(range(0, n, 3))
    # nested fields come back nested, one-to-many relations as lists
    h = hits[0]
    assert isinstance(h["cases"], list) and h["cases"][0]["project"]["project_id"].startswith("TCGA-")
    assert isinstance(h["cases"][0]["samples"], list)


def test_single_page_when_page_size_exceeds_total(client, gdc_double):
    hits = client.query_all("cases", filters=None, fields=["submitter_id"], page_size=1000)
    assert len(hits) == len(gdc_double.cases)
    assert gdc_double.count("POST", "/cases") == 1


def test_get_with_url_encoded_filters_and_string_numbers(gdc_double):
    flt = in_("files.data_format", ["SVS"])
    resp = requests.get(f"{gdc_double.url}/files", params={"filters": json.dumps(flt), "fields": "file_name,data_format",
                                                          "size": "100", "from": "0"}, timeout=10)
    hits = resp.json()["data"]["hits"]
    assert len(hits) == _slides_total(gdc_double)
    assert {h["data_format"] for h in hits} == {"SVS"}


def test_post_filters_as_json_string(gdc_double):
    body = {"filters": json.dumps(in_("data_format", ["TSV"])), "fields": "file_id", "size": 100}
    hits = requests.post(f"{gdc_double.url}/files", json=body, timeout=10).json()["data"]["hits"]
    assert hits and len(hits) == len(gdc_double.files) - _slides_total(gdc_double)


def test_single_entity_get(gdc_double):
    fid = gdc_double.files[0]["id"]
    body = requests.get(f"{gdc_double.url}/files/{fid}", params={"fields": "file_name"}, timeout=10).json()
    assert body == {"data": {"id": fid, "file_name": gdc_double.files[0]["file_name"]}, "warnings": {}}
    assert requests.get(f"{gdc_double.url}/cases/nope", timeout=10).status_code == 404


CASE = {"id": "c1", "submitter_id": "TCGA-02-0001", "project": {"project_id": "TCGA-GBM"},
        "demographic": {"vital_status": "Dead", "days_to_death": 358},
        "diagnoses": [{"days_to_last_follow_up": None, "primary_diagnosis": "Glioblastoma"}],
        "follow_ups": [{"days_to_follow_up": 100}, {"days_to_follow_up": 279}]}


@pytest.mark.parametrize("flt,expected", [
    ({"op": "=", "content": {"field": "project.project_id", "value": "TCGA-GBM"}}, True),
    ({"op": "=", "content": {"field": "cases.project.project_id", "value": "TCGA-LGG"}}, False),
    ({"op": "!=", "content": {"field": "project.project_id", "value": "TCGA-LGG"}}, True),
    ({"op": "!=", "content": {"field": "project.project_id", "value": "TCGA-GBM"}}, False),
    ({"op": "in", "content": {"field": "demographic.vital_status", "value": ["Alive", "Dead"]}}, True),
    ({"op": "in", "content": {"field": "follow_ups.days_to_follow_up", "value": [279]}}, True),
    ({"op": "in", "content": {"field": "follow_ups.days_to_follow_up", "value": ["100"]}}, True),
    ({"op": "exclude", "content": {"field": "project.project_id", "value": ["TCGA-GBM"]}}, False),
    ({"op": ">", "content": {"field": "follow_ups.days_to_follow_up", "value": 200}}, True),
    ({"op": "<=", "content": {"field": "demographic.days_to_death", "value": 300}}, False),
    ({"op": "is", "content": {"field": "diagnoses.days_to_last_follow_up", "value": "MISSING"}}, True),
    ({"op": "not", "content": {"field": "demographic.days_to_death", "value": "MISSING"}}, True),
    (and_(in_("project.project_id", ["TCGA-GBM"]), in_("submitter_id", ["TCGA-02-0001"])), True),
    (and_(in_("project.project_id", ["TCGA-GBM"]), in_("submitter_id", ["TCGA-02-0002"])), False),
    ({"op": "or", "content": [in_("project.project_id", ["TCGA-LGG"]), in_("submitter_id", ["TCGA-02-0001"])]}, True),
    ({"op": "or", "content": [in_("project.project_id", ["TCGA-LGG"]), in_("submitter_id", ["x"])]}, False),
    (None, True),
])
def test_filter_operators(flt, expected):
    assert match_filter(CASE, flt, endpoint="cases") is expected


def test_bad_filter_is_a_400_not_retried(client, gdc_double, sleeps):
    with pytest.raises(BadRequest):
        match_filter(CASE, {"op": "like", "content": {"field": "x", "value": 1}}, endpoint="cases")
    with pytest.raises(GdcError, match="HTTP 400.*unknown filter operator"):
        client.query_page("files", filters={"op": "like", "content": {"field": "x", "value": 1}}, fields=["id"],
                          size=1, offset=0)
    assert sleeps.waits == [] and gdc_double.count("POST", "/files") == 1


def test_filters_over_http_select_the_right_files(client, gdc_double):
    patient = gdc_double.files[0]["cases"][0]["submitter_id"]
    flt = and_(in_("cases.submitter_id", [patient]), in_("data_format", ["SVS"]))
    hits = client.query_all("files", filters=flt, fields=["file_name", "cases.submitter_id"], page_size=10)
    expected = {f["id"] for f in gdc_double.files if f["data_format"] == "SVS" and f["cases"][0]["submitter_id"] == patient}
    assert {h["id"] for h in hits} == expected


def test_projection_of_nested_paths():
    hit = project(CASE, ["diagnoses.primary_diagnosis", "follow_ups.days_to_follow_up"], [], endpoint="cases")
    assert hit == {"id": "c1", "diagnoses": [{"primary_diagnosis": "Glioblastoma"}],
                   "follow_ups": [{"days_to_follow_up": 100}, {"days_to_follow_up": 279}]}
    hit = project(CASE, ["submitter_id"], ["demographic"], endpoint="cases")
    assert hit["demographic"] == CASE["demographic"]


def test_429_honours_retry_after(client, gdc_double, sleeps):
    gdc_double.faults.fail_next("/files", 429, retry_after=7)
    hits = client.query_all("files", filters=None, fields=["file_name"], page_size=100)
    assert len(hits) == len(gdc_double.files)
    assert sleeps.waits == [7.0]  # the server's Retry-After, not the client's 0.01 s back-off


def test_429_retry_after_really_waits(gdc_double):
    gdc_double.faults.fail_next("/status", 429, retry_after=1)
    client = GdcClient(api_url=gdc_double.url, retry=RetryPolicy(max_retries=2, backoff_s=0.0))
    t0 = time.monotonic()
    assert client.status()["status"] == "OK"
    assert time.monotonic() - t0 >= 0.95
    assert gdc_double.count("GET", "/status") == 2


def test_500_is_retried_with_exponential_backoff(client, gdc_double, sleeps):
    gdc_double.faults.fail_next("/cases", 500, times=2)
    hits = client.query_all("cases", filters=None, fields=["submitter_id"], page_size=100)
    assert len(hits) == len(gdc_double.cases)
    assert len(sleeps.waits) == 2 and sleeps.waits[1] > sleeps.waits[0]
    assert gdc_double.count("POST", "/cases") == 3


def test_persistent_500_gives_up_naming_the_request(client, gdc_double, sleeps):
    gdc_double.faults.fail_next("/cases", 503, times=99)
    with pytest.raises(GdcError, match=r"failed after 4 attempts \(last: HTTP 503\)"):
        client.query_all("cases", filters=None, fields=["submitter_id"])
    assert len(sleeps.waits) == 3


def test_connection_errors_are_retried(sleeps):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = GdcClient(api_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_retries=2, backoff_s=0.01),
                       timeout_s=2, sleep=sleeps)
    with pytest.raises(GdcError, match="ConnectionError"):
        client.status()
    assert len(sleeps.waits) == 2


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now
    assert RetryPolicy(backoff_s=1, max_backoff_s=4, jitter=0).delay(5) == 4.0
    assert RetryPolicy().delay(0, retry_after=2.5) == 2.5


def test_token_from_env_or_file(tmp_path):
    assert load_token(token_env="TOK", environ={"TOK": " abc \n"}) == "abc"
    assert load_token(token_env="TOK", environ={}) is None
    f = tmp_path / "token.txt"
    f.write_text("from-file\n")
    assert load_token(token_env="TOK", token_file=f, environ={}) == "from-file"
    assert load_token(token_env="TOK", token_file=f, environ={"TOK": "env"}) == "env"
    with pytest.raises(ConfigError, match="cannot be read"):
        load_token(token_env=None, token_file=tmp_path / "missing", environ={})
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_token(token_env=None, token_file=tmp_path / "empty", environ={})


def test_token_is_sent_but_never_shown(gdc_double):
    secret = "s3cr3t-token-value"
    client = GdcClient(api_url=gdc_double.url, token=secret)
    assert secret not in repr(client)
    client.status()
    assert gdc_double.requests[-1].headers.get("X-Auth-Token") == secret
    gdc_double.faults.fail_next("/status", 403)
    with pytest.raises(GdcError) as err:
        client.status()
    assert secret not in str(err.value) and "token" in str(err.value)
