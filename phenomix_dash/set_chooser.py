"""The gene-set chooser under the navbar, on every page: pick an annotation set or paste/upload a list
of names; the unknown names are reported. The chosen set is one store (ids.SET_STORE) that every
page's highlight reads, and the URL's ``set`` parameter (links.SHARED_PARAMS), so a link reproduces it.

How the set reaches the URL without re-rendering the page: a clientside callback
(assets/gene_set_url.js) rewrites the query
string in place (history.replaceState) and gives the new search to every mounted dcc.Location, so a
page that later writes its own parameters (links.merge_search with its Location's search) keeps the
set. A page opened without ``set`` (a navbar link) gets the chosen set added back: the set belongs to
the session until cleared; a reload or a link opens with exactly the set its URL names.
"""

from __future__ import annotations

import base64
import binascii

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Input, Output, State, dcc, html, no_update

from phenomix_dash import ids
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.gene_sets import SetError, decode_set, encode_list, parse_names
from phenomix_dash.links import page_href
from phenomix_dash.security import MAX_QUERY_LEN, parse_query, safe_str
from phenomix_dash.set_data import is_member, set_options, try_set

MAX_UPLOAD_BYTES = 64 * 1024


def clean_set(value: object) -> str | None:
    """A set's URL form if it is well formed (not yet resolved against the screen), else None."""
    s = safe_str(value, max_len=MAX_QUERY_LEN)
    if not s:
        return None
    try:
        return s if decode_set(s) is not None else None
    except SetError:
        return None


def set_from_search(search: object) -> str | None:
    """The ``set`` parameter of a query string, as typed (None when absent or malformed)."""
    return clean_set(parse_query(search, ("set",), max_value_len=MAX_QUERY_LEN).get("set"))


def _opened_with() -> str | None:
    """The set of the page being loaded: the layout is fetched by a request of its own (no query
    string), whose Referer is the page's URL. Read here so the first draw already shows the set;
    set_from_url reads it again from the browser's URL when there is no Referer."""
    try:
        from urllib.parse import urlsplit

        from flask import has_request_context, request
    except ImportError:
        return None
    if not has_request_context():
        return None
    return (set_from_search(request.query_string.decode("latin-1"))
            or set_from_search(urlsplit(request.referrer or "").query))


def set_bar() -> html.Div:
    """The chooser: annotation sets, a paste box, upload, clear, and the report of the chosen set."""
    try:
        options = set_options(get_data())
    except DataUnavailable:
        options = []
    chosen = _opened_with()
    return dbc.Container(html.Div([
        dcc.Store(id=ids.SET_STORE, data=chosen), dcc.Store(id=ids.SET_URL_SYNC), dcc.Store(id=ids.SET_LOCATIONS, data=location_ids()),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id=ids.SET_CHOICE, options=options, value=None,
                                 placeholder="Highlight a set from the screen's annotations…",
                                 optionHeight=28), md=4),
            dbc.Col(dbc.Textarea(id=ids.SET_TEXT, rows=1, placeholder="…or paste gene / compound names "
                                 "(comma, space or one per line)", style={"minHeight": "38px"}), md=4),
            dbc.Col([
                dbc.Button("Highlight list", id=ids.SET_APPLY, size="sm", color="primary", className="me-1"),
                dcc.Upload(dbc.Button("Upload list", size="sm", color="secondary", outline=True),
                           id=ids.SET_UPLOAD, max_size=MAX_UPLOAD_BYTES, style={"display": "inline-block"},
                           className="me-1"),
                dbc.Button("Clear", id=ids.SET_CLEAR, size="sm", color="secondary", outline=True),
            ], md=4, className="d-flex align-items-start"),
        ], className="g-2"),
        html.Div(id=ids.SET_REPORT, className="small mt-1"),
    ], id=ids.SET_PANEL, className="mb-2 pb-2 border-bottom"), fluid=True)


def uploaded_text(contents: object) -> str:
    """The text of an uploaded file (dcc.Upload's data URL); SetError when it is not small UTF-8 text."""
    if not isinstance(contents, str) or "," not in contents:
        raise SetError("the upload is not a file")
    try:
        raw = base64.b64decode(contents.split(",", 1)[1], validate=False)
    except (binascii.Error, ValueError):
        raise SetError("the uploaded file could not be read") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise SetError(f"the uploaded file is {len(raw):,} bytes; at most {MAX_UPLOAD_BYTES:,}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SetError("the uploaded file is not UTF-8 text (a list of names, one per line)") from None


def set_report(key: str | None) -> list:
    """What the chooser says about the chosen set: its size here, the unknown names, where to look."""
    if not key:
        return []
    try:
        d = get_data()
    except DataUnavailable as err:
        return [dbc.Alert(f"Sets are unavailable: {err}", color="warning", className="py-1 my-1")]
    s, problem = try_set(d, key)
    if problem or s is None:
        return [dbc.Alert(f"Set not shown: {problem}", color="warning", className="py-1 my-1")]
    out: list = [html.Span([html.B(s.label), f": {s.size} perturbation{'s' if s.size != 1 else ''} on this screen, "
                            "outlined on the map, the similarity heatmaps and the plates · "]),
                 dcc.Link("set statistics", href=page_href("/sets", f"?set={key}"))]
    if s.unknown:
        out.append(dbc.Alert([html.B(f"{len(s.unknown)} name{'s' if len(s.unknown) != 1 else ''} not found "
                                     "on this screen: "), html.Span(", ".join(s.unknown), id="set-unknown-names")],
                             color="warning", className="py-1 my-1"))
    return out


def membership_badge(key: object, *, pert_id: object = None, well_id: object = None) -> dbc.Badge | None:
    """'in set X' (or 'not in set X') for one perturbation or well, on pages that show one; nothing
    when no set is chosen, none is named, or the set cannot be used here (the bar says why)."""
    key, pert_id, well_id = clean_set(key), safe_str(pert_id), safe_str(well_id)
    if not key or (pert_id is None and well_id is None):
        return None
    try:
        d = get_data()
        s, problem = try_set(d, key)
        if problem or s is None:
            return None
        member = is_member(d, key, pert_id=pert_id) if pert_id else is_member(d, key, well_id=well_id)
    except (DataUnavailable, ValueError):
        return None
    what = "this perturbation" if pert_id else "this well's perturbation"
    return dbc.Badge(f"in set {s.label}" if member else f"not in set {s.label}",
                     color="warning" if member else "light", text_color=None if member else "dark",
                     className="ms-1 set-membership",
                     title=f"{what} {'is' if member else 'is not'} a member of the set chosen above")


def choose_set(choice, _apply, upload, _clear, text, current):
    """A set chosen in the bar becomes the store's value; a list that cannot be used is said why."""
    from dash import ctx

    # Several inputs can arrive in one request (the dropdown following the store as a button is
    # pressed): the user's button wins over the dropdown.
    fired = set(ctx.triggered_prop_ids.values())
    trigger = next((t for t in (ids.SET_CLEAR, ids.SET_UPLOAD, ids.SET_APPLY, ids.SET_CHOICE) if t in fired), None)
    if trigger is None:
        return no_update, no_update
    try:
        if trigger == ids.SET_CLEAR:
            new = None
        elif trigger == ids.SET_CHOICE:
            if not choice:
                return no_update, no_update
            new = clean_set(choice)
        else:
            raw = uploaded_text(upload) if trigger == ids.SET_UPLOAD else safe_str(text, max_len=MAX_UPLOAD_BYTES)
            names = parse_names(raw)
            if not names:
                raise SetError("paste or upload at least one name")
            new = encode_list(names)
    except SetError as err:
        return no_update, [dbc.Alert(str(err), color="warning", className="py-1 my-1")]
    if new == current:
        return no_update, set_report(new)
    return new, no_update


def show_set(key, choice):
    key = clean_set(key)
    want = key if key and key.startswith("ann:") else None
    return set_report(key), (want if want != choice else no_update)


def set_from_url(search, current):
    """The set a page is opened with, and a URL naming another set (back/forward); a URL naming
    none keeps the chosen one (a navbar link)."""
    s = set_from_search(search)
    return s if s and s != current else no_update


def location_ids() -> list[str]:
    """Every dcc.Location the pages declare (ids.*_URL) and the app's own."""
    return sorted({v for k, v in vars(ids).items() if (k == "URL" or k.endswith("_URL")) and isinstance(v, str)})


def register(app) -> None:
    """Wire the chooser into ``app`` (create_app calls it): its layout is the app's, not a page's, so
    its callbacks belong to each app rather than to the process (Dash hands process-wide ones to the
    first app only)."""
    app.callback(
        Output(ids.SET_STORE, "data", allow_duplicate=True), Output(ids.SET_REPORT, "children", allow_duplicate=True),
        Input(ids.SET_CHOICE, "value"), Input(ids.SET_APPLY, "n_clicks"), Input(ids.SET_UPLOAD, "contents"),
        Input(ids.SET_CLEAR, "n_clicks"), State(ids.SET_TEXT, "value"), State(ids.SET_STORE, "data"),
        prevent_initial_call=True,
    )(choose_set)
    app.callback(
        Output(ids.SET_REPORT, "children"), Output(ids.SET_CHOICE, "value"),
        Input(ids.SET_STORE, "data"), State(ids.SET_CHOICE, "value"),
    )(show_set)
    app.callback(
        Output(ids.SET_STORE, "data", allow_duplicate=True),
        Input(ids.URL, "search"), State(ids.SET_STORE, "data"),
        prevent_initial_call="initial_duplicates",
    )(set_from_url)
    app.clientside_callback(
        ClientsideFunction("phenomix_sets", "sync_url"),  # assets/gene_set_url.js
        Output(ids.SET_URL_SYNC, "data"),
        Input(ids.SET_STORE, "data"), Input(ids.URL, "search"), Input(ids.URL, "pathname"),
        State(ids.SET_LOCATIONS, "data"),
    )
