"""Optional authentication (basic auth from a users file, or a trusted proxy header) and the
loud warning when the dashboard is reachable from other machines without either."""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from runpy import run_path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.auth import AuthConfigError, add_user, auth_mode, basic_credentials, check_credentials, load_users
from phenomix_dash.security import exposure_warning, is_loopback
from precompute.artifacts import ArtifactStore

REPO = Path(__file__).resolve().parents[1]
CALLBACK = {"output": "overview-well-store.data", "outputs": {"id": "overview-well-store", "property": "data"},
            "inputs": [{"id": "overview-plate-figure", "property": "clickData", "value": None}],
            "changedPropIds": ["overview-plate-figure.clickData"], "state": []}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("auth") / "store"
    st = ArtifactStore(root)
    with st.write_stage("ingest", "k0", config={}, inputs={}, code_version="t") as w:
        w.save_table("wells", pd.DataFrame({"well_id": ["a"], "plate": ["P1"], "batch": ["B1"], "well": ["A01"],
                                            "perturbation_type": ["negative_control"], "perturbation": ["nt"]}))
    with st.write_stage("embed", "k1", config={}, inputs={}, code_version="t") as w:
        w.save_array("embeddings", np.zeros((1, 2), np.float32))
    st.set_run("default", {"stages": {"ingest": "k0", "embed": {"x": "k1"}}, "primary": {"embedder": "x"}})
    return root


@pytest.fixture(scope="module")
def users_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users"
    add_user(path, "alice", "correct horse battery")
    add_user(path, "bob", "another secret")
    return path


def _app(store: Path, environ: dict[str, str]):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    app = create_app(Settings(store=store), environ=environ)
    client = app.server.test_client()
    client.get("/")  # the first request claims the pages' callbacks for this app
    return app, client


def _basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


# -- the users file ------------------------------------------------------------------------------
def test_users_file_holds_hashes_and_is_private(users_file):
    users = load_users(users_file)
    assert set(users) == {"alice", "bob"}
    assert all(h.startswith(("scrypt:", "pbkdf2:")) for h in users.values())
    assert "correct horse" not in users_file.read_text()
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600
    assert check_credentials(users, "alice", "correct horse battery")
    assert not check_credentials(users, "alice", "wrong")
    assert not check_credentials(users, "mallory", "correct horse battery")


def test_add_user_replaces_and_the_cli_reads_stdin(tmp_path):
    path = tmp_path / "users"
    add_user(path, "alice", "first password")
    done = subprocess.run([sys.executable, "-m", "phenomix_dash.auth", "add-user", str(path), "alice", "--password-stdin"],
                          input="second password\n", capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 0, done.stderr
    users = load_users(path)
    assert list(users) == ["alice"] and check_credentials(users, "alice", "second password")
    with pytest.raises(AuthConfigError, match="at least 8"):
        add_user(path, "carol", "short")
    with pytest.raises(AuthConfigError, match="no ':'"):
        add_user(path, "ca:rol", "long enough pw")


@pytest.mark.parametrize("text,match", [
    ("alice:plaintext-password\n", r"line 1: the password of 'alice' is not a hash"),
    ("# users\n\nnot-a-pair\n", r"line 3: expected 'name:password-hash'"),
    ("# nobody\n", r"no users"),
])
def test_bad_users_files_are_named(tmp_path, text, match):
    path = tmp_path / "users"
    path.write_text(text)
    with pytest.raises(AuthConfigError, match=match):
        load_users(path)


def test_missing_users_file_and_conflicting_settings(tmp_path, store):
    with pytest.raises(AuthConfigError, match="cannot read the users file"):
        load_users(tmp_path / "nope")
    with pytest.raises(AuthConfigError, match="not both"):
        auth_mode({"PHENOMIX_AUTH_FILE": "x", "PHENOMIX_TRUST_HEADER": "X-User"})
    with pytest.raises(AuthConfigError, match="cannot read"):
        _app(store, {"PHENOMIX_AUTH_FILE": str(tmp_path / "nope")})


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Basic", "Basic !!!notbase64", "Basic " + "A" * 10_000,
                                    "Basic " + base64.b64encode(b"no-colon").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()])
def test_malformed_authorization_headers_are_not_credentials(header):
    assert basic_credentials(header) is None


# -- basic auth on the app -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def basic_app(store, users_file):
    return _app(store, {"PHENOMIX_AUTH_FILE": str(users_file)})


def test_basic_auth_protects_every_route(basic_app):
    app, client = basic_app
    assert app.phenomix_auth == "basic"
    for path in ("/", "/map", "/_dash-layout", "/_dash-dependencies", "/assets/style.css"):
        resp = client.get(path)
        assert resp.status_code == 401, path
        assert resp.headers.get("WWW-Authenticate", "").startswith("Basic")
    assert client.post("/_dash-update-component", json=CALLBACK).status_code == 401


def test_basic_auth_lets_the_right_user_in(basic_app):
    _, client = basic_app
    assert client.get("/", headers=_basic("alice", "correct horse battery")).status_code == 200
    assert client.get("/", headers=_basic("bob", "another secret")).status_code == 200
    assert client.get("/assets/style.css", headers=_basic("bob", "another secret")).status_code == 200
    resp = client.post("/_dash-update-component", json=CALLBACK, headers=_basic("alice", "correct horse battery"))
    assert resp.status_code in (200, 204)


@pytest.mark.parametrize("headers", [_basic("alice", "wrong"), _basic("mallory", "correct horse battery"),
                                     _basic("", ""), {"Authorization": "Bearer token"},
                                     {"Authorization": "Basic !!!"},
                                     {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}])
def test_basic_auth_refuses_wrong_or_malformed_credentials_with_401(basic_app, headers):
    _, client = basic_app
    resp = client.get("/", headers=headers)
    assert resp.status_code == 401
    assert b"Traceback" not in resp.data
    resp = client.post("/_dash-update-component", data=b"[]", content_type="application/json", headers=headers)
    assert resp.status_code in (400, 401) and b"Traceback" not in resp.data


# -- trusted reverse-proxy header ----------------------------------------------------------------
@pytest.fixture(scope="module")
def header_app(store):
    return _app(store, {"PHENOMIX_TRUST_HEADER": "X-Forwarded-User"})


def test_trusted_header_is_required(header_app):
    app, client = header_app
    assert app.phenomix_auth == "header"
    for headers in ({}, {"X-Forwarded-User": ""}, {"X-Forwarded-User": "eve\x00"}, {"X-Forwarded-User": "x" * 1000},
                    {"X-Other-User": "alice"}):
        resp = client.get("/", headers=headers)
        assert resp.status_code == 401, headers
        assert b"X-Forwarded-User" in resp.data
    assert client.post("/_dash-update-component", json=CALLBACK).status_code == 401


def test_trusted_header_lets_the_proxied_user_in(header_app):
    _, client = header_app
    assert client.get("/", headers={"X-Forwarded-User": "alice@lab.org"}).status_code == 200
    resp = client.post("/_dash-update-component", json=CALLBACK, headers={"X-Forwarded-User": "alice@lab.org"})
    assert resp.status_code in (200, 204)


def test_a_header_name_that_is_not_one_is_refused(store):
    with pytest.raises(AuthConfigError, match="not an HTTP header name"):
        _app(store, {"PHENOMIX_TRUST_HEADER": "X User: evil"})


# -- exposure warnings ---------------------------------------------------------------------------
@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.1.1", True),
                                       ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
                                       ("lab-server", False), ("", False)])
def test_loopback_detection(host, loop):
    assert is_loopback(host) is loop


def test_warning_only_when_exposed_without_auth():
    assert exposure_warning("127.0.0.1", None) is None
    assert "WITHOUT AUTHENTICATION" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("0.0.0.0", "basic") is None
    assert "reverse proxy" in exposure_warning("0.0.0.0", "header")


def test_development_server_warns_loudly_on_stderr_and_log(store, monkeypatch, capsys, caplog):
    import dash

    import app as app_module

    ran = {}
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kw: ran.update(kw))
    monkeypatch.delenv("PHENOMIX_AUTH_FILE", raising=False)
    monkeypatch.delenv("PHENOMIX_TRUST_HEADER", raising=False)
    with caplog.at_level(logging.WARNING, logger="phenomix_dash"):
        assert app_module.main(["--store", str(store), "--host", "0.0.0.0", "--port", "8999"]) == 0
    assert ran["host"] == "0.0.0.0" and ran["debug"] is False
    assert "WITHOUT AUTHENTICATION" in capsys.readouterr().err
    assert "WITHOUT AUTHENTICATION" in caplog.text
    caplog.clear()
    assert app_module.main(["--store", str(store)]) == 0
    assert ran["host"] == "127.0.0.1"
    assert "WITHOUT AUTHENTICATION" not in capsys.readouterr().err + caplog.text


def test_gunicorn_config_binds_loopback_and_warns_when_exposed(monkeypatch, capsys):
    for var in ("PHENOMIX_HOST", "PHENOMIX_PORT", "PHENOMIX_AUTH_FILE", "PHENOMIX_TRUST_HEADER"):
        monkeypatch.delenv(var, raising=False)
    conf = run_path(str(REPO / "gunicorn.conf.py"))
    assert conf["bind"] == ["127.0.0.1:8050"] and conf["workers"] >= 1 and conf["wsgi_app"] == "app:server"
    logged = []
    log = SimpleNamespace(warning=lambda m, *a: logged.append(m % a if a else m), info=lambda *a: None,
                          error=lambda *a: None)
    for bind, exposed in ((["127.0.0.1:8050"], False), (["[::1]:8050"], False), (["0.0.0.0:8050"], True),
                          (["[::]:8050"], True), (["unix:/tmp/phx.sock"], False)):
        server = SimpleNamespace(cfg=SimpleNamespace(bind=bind, workers=2, threads=2), log=log)
        logged.clear()
        conf["when_ready"](server)
        err = capsys.readouterr().err
        assert ("WITHOUT AUTHENTICATION" in err) is exposed, bind
        assert any("WITHOUT AUTHENTICATION" in m for m in logged) is exposed, bind
    monkeypatch.setenv("PHENOMIX_HOST", "0.0.0.0")
    monkeypatch.setenv("PHENOMIX_PORT", "9000")
    assert run_path(str(REPO / "gunicorn.conf.py"))["bind"] == ["0.0.0.0:9000"]
