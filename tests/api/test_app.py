def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_checks_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["database"] is True


def test_openapi_and_docs(client):
    assert client.get("/openapi.json").json()["info"]["title"] == "hanseek"
    assert client.get("/docs").status_code == 200


def test_unknown_path_is_problem_json(client):
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 404


def test_oversized_body_is_413(client, app_state):
    limit = app_state.settings.max_body_bytes
    r = client.post("/encode", content=b"x" * (limit + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "limit" in r.json()["detail"]


def test_malformed_json_is_422_not_500(client):
    r = client.post("/encode", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "Traceback" not in r.text
