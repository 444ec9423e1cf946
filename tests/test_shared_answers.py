"""Answers of pure callbacks shared by every worker (phenomix_dash/shared_answers.py): a repeated view
is answered from the shared disk cache with the bytes the first answer had; a changed input, another
encoding or another screen is never given that answer; callbacks not declared shareable, and
requests for a screen the user cannot have, always reach Dash."""

from __future__ import annotations

import json

import diskcache
import pytest

from benchmarks.load_test import ROUTER, build_payload, decoded, discover
from phenomix.settings import Settings
from phenomix_dash import cache, create_app, shared_answers

BROWSER = {"Accept-Encoding": "gzip, deflate, br"}


class _InProcess:
    """benchmarks/load_test.py's client, answered by the Flask test client (no server)."""

    def __init__(self, client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def request(self, method: str, path: str, body=None):
        resp = self.client.open(path, method=method, json=body, headers=self.headers)
        return resp.status_code, decoded(resp.get_data(), resp.headers.get("Content-Encoding"))


@pytest.fixture(scope="module")
def served(tiny_store):
    app = create_app(Settings(store=tiny_store))
    shared = shared_answers.install(app.server)
    client = app.server.test_client()
    targets = {t["label"]: t for t in discover(_InProcess(client, BROWSER))}
    return app, shared, client, targets


def _post(client, target, values=None, headers=BROWSER):
    vals = {**target["base"], **(values or {})}
    return client.post("/_dash-update-component", json=build_payload(target["callback"], vals), headers=headers)


def _answer_keys(c) -> set:
    return {k for k in c.iterkeys() if str(k).startswith("answer:")}


def _props(resp) -> dict:
    return json.loads(decoded(resp.get_data(), resp.headers.get("Content-Encoding")))["response"]


@pytest.mark.parametrize("label", ["map", "neighbours", "heatmap"])
def test_a_repeated_view_is_answered_from_the_shared_cache_with_the_same_bytes(served, label):
    _, shared, client, targets = served
    target = targets[label]
    values = {k: v[0] for k, v in target["choices"].items()}  # a view with a perturbation chosen
    in_memo_folder = _answer_keys(cache.disk_cache())
    first = _post(client, target, values)
    assert first.status_code == 200 and "X-Phenomix-Shared-Answer" not in first.headers
    before = shared.stats()["hits"]
    again = _post(client, target, values)
    assert again.status_code == 200 and again.headers["X-Phenomix-Shared-Answer"] == "hit"
    assert shared.stats()["hits"] == before + 1
    assert again.get_data() == first.get_data()  # the bytes sent, compressed as they were
    assert again.headers.get("Content-Encoding") == first.headers.get("Content-Encoding")
    assert _props(again) and _props(again) == _props(first)
    # Kept in the folder every worker opens: another process's Cache sees it.
    # Kept in their own folder inside the one every worker opens (another process's Cache sees
    # them), apart from the memoized results they must not push out.
    folder = shared_answers.answers_cache().directory
    assert str(folder).startswith(str(cache.disk_cache().directory))
    other = diskcache.Cache(folder)
    try:
        assert any(str(k).startswith("answer:") for k in other.iterkeys())
    finally:
        other.close()
    assert _answer_keys(cache.disk_cache()) == in_memo_folder


def test_other_inputs_or_another_encoding_are_other_answers(served):
    _, shared, client, targets = served
    target = targets["neighbours"]
    (key, options), = [(k, v) for k, v in target["choices"].items() if len(v) > 1][:1]
    a, b = _post(client, target, {key: options[0]}), _post(client, target, {key: options[1]})
    assert _props(a) != _props(b)  # another perturbation: its own answer, not the cached one
    b_again = _post(client, target, {key: options[1]})
    assert b_again.headers.get("X-Phenomix-Shared-Answer") == "hit" and _props(b_again) == _props(b)
    plain = _post(client, target, {key: options[1]}, headers={})
    assert "X-Phenomix-Shared-Answer" not in plain.headers  # another encoding: computed and kept apart
    assert "Content-Encoding" not in plain.headers and _props(plain) == _props(b)


def test_callbacks_not_declared_shareable_always_reach_dash(served):
    app, shared, client, _ = served
    deps = json.loads(client.get("/_dash-dependencies").get_data())
    router = next(d for d in deps if d["output"] == ROUTER)
    body = build_payload(router, {("_pages_location", "pathname"): "/map", ("_pages_location", "search"): ""})
    before = shared.stats()
    for _ in range(2):
        resp = client.post("/_dash-update-component", json=body, headers=BROWSER)
        assert resp.status_code == 200 and "X-Phenomix-Shared-Answer" not in resp.headers
    assert shared.stats() == before


def test_a_screen_the_request_cannot_have_is_never_answered_from_the_cache(served):
    _, shared, client, targets = served
    target = targets["map"]
    _post(client, target)  # the default screen's answer is in the cache
    assert _post(client, target).headers.get("X-Phenomix-Shared-Answer") == "hit"
    before = shared.stats()
    for _ in range(2):
        resp = _post(client, target, headers={**BROWSER, "X-Phenomix-Screen": "nope"})
        assert "X-Phenomix-Shared-Answer" not in resp.headers
        title = _props(resp)["map-raw-figure"]["figure"]["layout"]["title"]["text"]
        assert "nope" in title  # Dash answered: the callback says the screen does not exist
    assert shared.stats() == before


def test_the_key_holds_the_body_screen_store_code_and_encoding():
    ident = ("/s", "default", "{}", "t")
    base = shared_answers.answer_key(b"{}", "demo", None, ident, "br")
    assert base == shared_answers.answer_key(b"{}", "demo", None, ident, "br")
    assert len({base,
                shared_answers.answer_key(b"{ }", "demo", None, ident, "br"),
                shared_answers.answer_key(b"{}", "real", None, ident, "br"),
                shared_answers.answer_key(b"{}", "demo", "demo", ident, "br"),
                shared_answers.answer_key(b"{}", "demo", None, ("/s", "default", "{}", "t2"), "br"),
                shared_answers.answer_key(b"{}", "demo", None, ident, "gzip")}) == 6
    assert shared_answers.first_output("..a.figure...b.data..") == "a.figure"
    assert shared_answers.first_output("a.figure") == "a.figure" and shared_answers.first_output(None) is None
