"""Several screens behind one server (#16): every store under a root folder is a screen, the request
names its screen (URL, X-Phenomix-Screen header, Referer), get_data() serves only screens that exist,
are healthy and are the user's, and a damaged screen is listed unavailable while the others serve."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phenomix.settings import Settings
from phenomix_dash import screens
from phenomix_dash.auth import AuthConfigError, add_user, load_screen_access, load_user_entries
from precompute.artifacts import ArtifactStore


def _fake_store(root: Path, n_wells: int) -> Path:
    """A store of two small stages whose wells table has ``n_wells`` rows (enough for get_data)."""
    st = ArtifactStore(root)
    with st.write_stage("ingest", "k0", config={}, inputs={}, code_version="t") as w:
        w.save_table("wells", pd.DataFrame({
            "well_id": [f"w{i}" for i in range(n_wells)], "plate": ["P1"] * n_wells, "batch": ["B1"] * n_wells,
            "well": [f"A{i + 1:02d}" for i in range(n_wells)], "perturbation_type": ["negative_control"] * n_wells,
            "perturbation": ["nt"] * n_wells}))
    with st.write_stage("embed", "k1", config={}, inputs={}, code_version="t") as w:
        w.save_array("embeddings", np.zeros((n_wells, 2), np.float32))
    st.set_run("default", {"stages": {"ingest": "k0", "embed": {"x": "k1"}}, "primary": {"embedder": "x"}})
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """alpha (3 wells), beta (5 wells), broken (alpha with an edited artifact), a folder that is no store."""
    r = tmp_path_factory.mktemp("screens")
    _fake_store(r / "alpha", 3)
    _fake_store(r / "beta", 5)
    shutil.copytree(r / "alpha", r / "broken")
    emb = next((r / "broken").glob("embed-*")) / "embeddings.npy"
    emb.write_bytes(emb.read_bytes()[:-4] + b"\x01\x02\x03\x04")  # same size, other bytes
    (r / "notes").mkdir()
    return r


@pytest.fixture()
def served(root):
    """get_data() configured over ``root`` with alpha as the default screen (no authentication)."""
    from phenomix_dash import auth, data

    before = data._settings
    auth._set_access(None, None, {})
    data.configure(Settings(store=root / "alpha", store_root=root))
    yield data
    auth._set_access(None, None, {})
    data.configure(before)


def _request(**headers):
    """A Flask request context for a callback POST carrying ``headers``."""
    import flask

    return flask.Flask("t").test_request_context("/_dash-update-component", method="POST",
                                                headers={k.replace("_", "-"): v for k, v in headers.items()})


# -- settings and discovery --------------------------------------------------------------------

def test_store_root_from_the_environment_and_the_command_line(tmp_path):
    from phenomix.serve import parse_args

    s = Settings.from_env({"PHENOMIX_STORE_ROOT": str(tmp_path), "PHENOMIX_SCREEN": "real"})
    assert s.store_root == tmp_path and s.store == tmp_path / "real"
    assert Settings.from_env({}).store_root is None  # one store, as before
    a = parse_args(["--store-root", str(tmp_path), "--screen", "beta"])
    assert a.store_root == tmp_path and a.store == tmp_path / "beta"
    assert parse_args(["--store", str(tmp_path / "x")]).store_root is None


def test_every_store_under_the_root_is_a_screen_named_after_its_folder(root):
    reg = screens.ScreenRegistry.from_settings(Settings(store=root / "beta", store_root=root))
    assert reg.names == ("alpha", "beta", "broken")  # "notes" holds no STORE.json
    assert reg.default == "beta"
    # A default that is not among them falls back to the first; one store without a root is one screen.
    assert screens.ScreenRegistry.from_settings(Settings(store=root / "gone", store_root=root)).default == "alpha"
    single = screens.ScreenRegistry.from_settings(Settings(store=root / "beta"))
    assert single.names == ("beta",) and single.default == "beta"


def test_folders_that_cannot_be_screen_names_are_skipped(tmp_path):
    _fake_store(tmp_path / "ok", 1)
    _fake_store(tmp_path / "has space", 1)
    assert list(screens.discover_stores(tmp_path)) == ["ok"]
    with pytest.raises(ValueError, match="cannot list"):
        screens.discover_stores(tmp_path / "missing")


# -- which screen a request is for ----------------------------------------------------------------

def test_get_data_serves_the_screen_the_request_names(served, root):
    assert len(served.get_data().wells) == 3  # outside a request: the default screen
    with _request(X_Phenomix_Screen="beta"):
        assert len(served.get_data().wells) == 5
    with _request(Referer="http://127.0.0.1:8050/map?level=wells&screen=beta"):
        assert len(served.get_data().wells) == 5
    with _request(Referer="http://127.0.0.1:8050/map?level=wells"):
        assert len(served.get_data().wells) == 3  # no screen in the URL: the default one (old links)
    # The header wins over the Referer: it is the page's URL at the time of the request.
    with _request(X_Phenomix_Screen="alpha", Referer="http://h/?screen=beta"):
        assert len(served.get_data().wells) == 3
    assert len(served.get_data("beta").wells) == 5


@pytest.mark.parametrize("value", ["nope", "../alpha", "a" * 500, "beta\x00", "%2e%2e"])
def test_unknown_or_crafted_screen_names_are_refused_with_the_screens_there_are(served, value):
    with _request(X_Phenomix_Screen=value), pytest.raises(served.DataUnavailable) as err:
        served.get_data()
    assert "no screen named" in str(err.value) or "not available" in str(err.value)


def test_links_carry_a_non_default_screen_only(served):
    from phenomix_dash.links import merge_search, page_href

    assert page_href("/map", None, pert="g1") == "/map?pert=g1"  # outside a request
    with _request(X_Phenomix_Screen="beta"):
        assert page_href("/map", "?set=s1", pert="g1") == "/map?screen=beta&set=s1&pert=g1"
    with _request(X_Phenomix_Screen="alpha"):
        assert page_href("/map") == "/map"
    assert merge_search("?screen=beta&pert=x", {"k": 5}) == "?screen=beta&k=5"


def test_two_screens_never_share_cached_results(served, root):
    from phenomix_dash.cache import memoize

    calls = []

    @memoize(8, store=True, disk=True)
    def n_wells(d) -> int:
        calls.append(d.store_root.name)
        return len(d.wells)

    assert n_wells(served.get_data("alpha")) == 3
    assert n_wells(served.get_data("beta")) == 5
    assert n_wells(served.get_data("alpha")) == 3
    assert calls == ["alpha", "beta"]


# -- damaged screens -------------------------------------------------------------------------------

def test_a_screen_failing_its_checksums_is_unavailable_and_the_others_serve(served, root):
    reg = screens.registry()
    problems = screens.verify_small_stores(reg)
    assert problems["alpha"] is None and problems["beta"] is None
    assert "checksum mismatch" in problems["broken"] and "embeddings.npy" in problems["broken"]
    with pytest.raises(served.DataUnavailable, match="screen 'broken' is unavailable: .*checksum mismatch"):
        served.get_data("broken")
    assert len(served.get_data("beta").wells) == 5


def test_a_damaged_stage_read_by_a_page_marks_its_screen_unavailable(served, root):
    d = served.get_data("broken")  # the cheap check passes: every manifest is there
    with pytest.raises(served.DataUnavailable, match="checksum mismatch"):
        d.stage("embed", "x")
    assert "checksum mismatch" in screens.store_problem(root / "broken", "default")
    with pytest.raises(served.DataUnavailable, match="unavailable"):
        served.get_data("broken")


def test_a_store_missing_a_stage_is_listed_unavailable_with_the_reason(tmp_path):
    _fake_store(tmp_path / "s", 2)
    shutil.rmtree(next((tmp_path / "s").glob("embed-*")))
    assert "not complete" in screens.store_problem(tmp_path / "s", "default")


# -- per-user screens --------------------------------------------------------------------------------

def test_users_file_lines_may_name_the_users_screens(tmp_path):
    users = tmp_path / "users"
    add_user(users, "alice", "correct horse battery")
    add_user(users, "bob", "another secret", screens="beta")
    add_user(users, "carol", "third secret!", screens="alpha,beta")
    entries = load_user_entries(users)
    assert entries["alice"][1] is None  # no field: every screen, as before screens existed
    assert entries["bob"][1] == {"beta"} and entries["carol"][1] == {"alpha", "beta"}
    assert users.read_text().splitlines()[1].endswith(" screens=beta")


@pytest.mark.parametrize("tail, match", [
    ("screens=", "line 2: 'screens=' needs comma-separated screen names"),
    ("screens=a,,b", "line 2: 'screens=' needs"),
    ("teams=a", "line 2: after the entry, only 'screens="),
    ("screens=a screens=b", "line 2: after the entry"),
])
def test_bad_screens_fields_are_named_with_their_line(tmp_path, tail, match):
    users = tmp_path / "users"
    add_user(users, "alice", "correct horse battery")
    users.write_text(users.read_text() + users.read_text().strip().replace("alice", "bob") + f" {tail}\n")
    with pytest.raises(AuthConfigError, match=match):
        load_user_entries(users)


def test_screen_access_file_for_header_mode(tmp_path):
    f = tmp_path / "access"
    f.write_text("# who sees what\nalice screens=alpha,beta\n* screens=alpha\n")
    assert load_screen_access(f) == {"alice": {"alpha", "beta"}, "*": {"alpha"}}
    f.write_text("alice\n")
    with pytest.raises(AuthConfigError, match="line 1: expected 'name screens="):
        load_screen_access(f)


def test_a_user_sees_only_their_screens_whatever_the_request_says(served, root, tmp_path):
    from phenomix_dash import auth

    users = tmp_path / "users"
    add_user(users, "bob", "another secret", screens="beta")
    add_user(users, "alice", "correct horse battery")
    entries = load_user_entries(users)
    auth._set_access("basic", None, {n: s for n, (_h, s) in entries.items()})
    bob = "Basic " + base64.b64encode(b"bob:another secret").decode()
    import flask

    with _request(X_Phenomix_Screen="alpha", Authorization=bob):
        flask.g.phenomix_user = "bob"
        with pytest.raises(served.DataUnavailable, match="screen 'alpha' is not available to you"):
            served.get_data()
        with pytest.raises(served.DataUnavailable, match="not available to you"):
            served.get_data("alpha")  # an explicit name is checked too
        assert screens.visible_screens(screens.registry()) == ("beta",)
    with _request(Authorization=bob):
        flask.g.phenomix_user = "bob"
        assert len(served.get_data().wells) == 5  # the default screen is not his: his first one
    with _request(X_Phenomix_Screen="nope"):
        flask.g.phenomix_user = "bob"
        with pytest.raises(served.DataUnavailable) as err:
            served.get_data()
        assert "alpha" not in str(err.value)  # the refusal does not list screens he may not see
    with _request(X_Phenomix_Screen="alpha"):
        flask.g.phenomix_user = "alice"
        assert len(served.get_data().wells) == 3


def test_header_mode_users_not_in_the_access_file_see_no_screen(served):
    import flask

    from phenomix_dash import auth

    auth._set_access("header", "X-Forwarded-User", {"alice": frozenset({"beta"})})
    with _request(X_Phenomix_Screen="beta"):
        flask.g.phenomix_user = "mallory"
        with pytest.raises(served.DataUnavailable, match="not available to you"):
            served.get_data()
    with _request():
        flask.g.phenomix_user = "mallory"
        with pytest.raises(served.DataUnavailable, match="no screen of this server is available to you"):
            served.get_data()


# -- the served app ------------------------------------------------------------------------------------

def _app(root: Path, environ: dict[str, str]):
    from phenomix_dash import create_app

    app = create_app(Settings(store=root / "alpha", store_root=root), environ=environ)
    client = app.server.test_client()
    client.get("/")
    return app, client


def test_page_loads_for_unknown_or_forbidden_screens_are_answered_404_and_403(root, tmp_path):
    users = tmp_path / "users"
    add_user(users, "bob", "another secret", screens="beta")
    bob = {"Authorization": "Basic " + base64.b64encode(b"bob:another secret").decode()}
    app, client = _app(root, {"PHENOMIX_AUTH_FILE": str(users)})
    try:
        r = client.get("/map?screen=alpha", headers=bob)
        assert r.status_code == 403 and "not available to you" in r.get_data(as_text=True)
        assert client.get("/map?screen=nope", headers=bob).status_code == 404
        assert client.get("/map?screen=beta", headers=bob).status_code == 200
        assert client.get("/map?screen=beta").status_code == 401  # no user at all
        # The frame of the page names none of the screens bob may not see; with one screen to see,
        # there is nothing to switch to.
        layout = client.get("/_dash-layout", headers={**bob, "Referer": "http://h/map?screen=beta"}).get_data(as_text=True)
        layout = layout.replace("\\u002f", "/")  # Dash's JSON escapes slashes
        assert "alpha" not in layout and "broken" not in layout and "Screen:" not in layout
        assert "/map?screen=beta" in layout  # bob's links keep his screen (it is not the default)
    finally:
        from phenomix_dash import auth

        auth._set_access(None, None, {})


def test_the_switcher_lists_every_screen_and_the_damaged_one_with_its_reason(root):
    app, client = _app(root, {})
    screens.verify_small_stores(screens.registry())
    layout = client.get("/_dash-layout", headers={"X-Phenomix-Screen": "beta"}).get_data(as_text=True)
    layout = layout.replace("\\u002f", "/")  # Dash's JSON escapes slashes
    assert "Screen: beta" in layout
    assert "unavailable: " in layout and "checksum mismatch" in layout
    assert "/?screen=alpha" in layout and "/map?screen=beta" in layout  # switcher items, navbar links


def test_the_switcher_links_to_the_page_being_viewed_from_the_first_render(root):
    """The layout request's Referer is the page: its switcher items already point at that page on
    the other screens (a click before any callback answers must not land on the overview)."""
    app, client = _app(root, {})
    layout = client.get("/_dash-layout", headers={"Referer": "http://localhost/map?screen=beta&sel=G1"})
    text = layout.get_data(as_text=True).replace("\\u002f", "/")
    assert "/map?screen=alpha" in text and "/?screen=alpha" not in text
    # A Referer naming another host or a scheme-relative path gives the overview, never that URL.
    for bad in ("http://evil.example//evil.example/x", "not a url"):
        text = client.get("/_dash-layout", headers={"Referer": bad}).get_data(as_text=True)
        assert "evil.example" not in text.replace("\\u002f", "/")


def test_background_callbacks_read_the_screen_and_user_from_the_original_request(served):
    """Exports run in a child process without a Flask request: Dash hands them the request's headers."""
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    from phenomix_dash import auth

    auth._set_access("basic", None, {"bob": frozenset({"beta"}), "alice": None})
    bob = "Basic " + base64.b64encode(b"bob:another secret").decode()
    token = context_value.set(AttributeDict(headers={"X-Phenomix-Screen": "beta", "Authorization": bob}))
    try:
        assert auth.current_user() == "bob"
        assert len(served.get_data().wells) == 5
        context_value.set(AttributeDict(headers={"Referer": "http://h/activity?screen=alpha", "Authorization": bob}))
        with pytest.raises(served.DataUnavailable, match="not available to you"):
            served.get_data()
    finally:
        context_value.reset(token)


def test_header_mode_access_file_through_the_environment(root, tmp_path):
    access = tmp_path / "access"
    access.write_text("alice screens=beta\n")
    app, client = _app(root, {"PHENOMIX_TRUST_HEADER": "X-Forwarded-User", "PHENOMIX_SCREEN_ACCESS": str(access)})
    try:
        alice, mallory = {"X-Forwarded-User": "alice"}, {"X-Forwarded-User": "mallory"}
        assert client.get("/?screen=beta", headers=alice).status_code == 200
        assert client.get("/?screen=alpha", headers=alice).status_code == 403
        assert client.get("/?screen=beta", headers=mallory).status_code == 403
    finally:
        from phenomix_dash import auth

        auth._set_access(None, None, {})
    # The access file belongs to header mode: with a users file, the screens go on the users' lines.
    with pytest.raises(AuthConfigError, match="PHENOMIX_SCREEN_ACCESS is for PHENOMIX_TRUST_HEADER"):
        _app(root, {"PHENOMIX_AUTH_FILE": str(tmp_path / "users"), "PHENOMIX_SCREEN_ACCESS": str(access)})
