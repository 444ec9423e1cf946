// The chosen gene set in the URL (phenomix_dash/set_chooser.py): rewrite the query string's `set`
// in place and hand the new search to every mounted dcc.Location, so a page that later writes its
// own parameters keeps the set. A file, not an inline clientside callback: Dash hands inline ones
// only to the first app of a process.
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    phenomix_sets: {
        sync_url: function (want, search, pathname, locations) {
            const params = new URLSearchParams(window.location.search);
            const cur = params.get('set');
            want = want || null;
            // Did the chosen set change since the last call (rather than the URL)? The callback
            // context leaves out inputs whose new value is empty, so a cleared set would not count.
            const prev = window.__phenomixSet;
            window.__phenomixSet = want;
            const fromStore = prev !== undefined && prev !== want;
            if ((cur || null) === want) { return window.dash_clientside.no_update; }
            // The URL changed: a page opened without a set (a navbar link) gets the chosen one back.
            if (!fromStore && (cur || !want)) { return window.dash_clientside.no_update; }
            if (want) { params.set('set', want); } else { params.delete('set'); }
            const qs = params.toString();
            const s = qs ? '?' + qs : '';
            window.history.replaceState(window.history.state, '', window.location.pathname + s + window.location.hash);
            // Hand each Location the whole new address, not only its search: dcc.Location treats a
            // changed href as the one to go to, and compares it with the props it last rendered
            // with, which need not hold the href it wrote itself on mount; given a search alone it
            // could push its old href (with the old set) back into the address bar.
            const href = window.location.href;
            const api = window.dash_component_api;
            for (const id of (locations || [])) {
                try {
                    if (api && api.getLayout && api.getLayout(id)) { window.dash_clientside.set_props(id, {search: s, href: href}); }
                } catch (e) { /* a Location that went away meanwhile */ }
            }
            return want;
        }
    }
});
