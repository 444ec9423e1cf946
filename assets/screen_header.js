/* Phenomix: keep the screen being browsed in the URL, and tell the server about it.
 *
 * 1. Every same-origin request the page makes carries the `screen` parameter of the page's current
 *    URL as an X-Phenomix-Screen header: Dash callbacks do not see the page's URL
 *    (phenomix_dash/screens.py reads the header; the Referer is its fallback).
 * 2. A page rewriting its own URL (a dcc.Location's search, a dcc.Link) keeps `screen` when the new
 *    URL does not name one: only the navbar's screen switcher, which always names one, changes it.
 *    So a page that writes its query string without the shared parameters cannot silently move
 *    the user to another screen, and a reload shows what was on screen.
 * The server checks every name against the screens the user may see: the header grants nothing. */
(function () {
  "use strict";
  if (window.__phenomixScreens) { return; }
  window.__phenomixScreens = true;

  function currentScreen() {
    return new URLSearchParams(window.location.search).get("screen");
  }

  function sameOrigin(url) {
    try {
      return new URL(String(url), window.location.href).origin === window.location.origin;
    } catch (e) { return false; }
  }

  function keepScreen(url) {
    var screen = currentScreen();
    if (!screen || url === undefined || url === null || !sameOrigin(url)) { return url; }
    var s = String(url);
    var hashAt = s.indexOf("#");
    var hash = hashAt >= 0 ? s.slice(hashAt) : "";
    var rest = hashAt >= 0 ? s.slice(0, hashAt) : s;
    var queryAt = rest.indexOf("?");
    var query = queryAt >= 0 ? rest.slice(queryAt + 1) : "";
    if (new URLSearchParams(query).has("screen")) { return url; }
    var path = queryAt >= 0 ? rest.slice(0, queryAt) : rest;
    if (queryAt < 0 && path === "") { path = window.location.pathname; }  // "" or "#x": this page
    return path + "?" + (query ? query + "&" : "") + "screen=" + encodeURIComponent(screen) + hash;
  }

  ["pushState", "replaceState"].forEach(function (name) {
    var original = window.history[name];
    window.history[name] = function (state, title, url) {
      return arguments.length > 2 ? original.call(this, state, title, keepScreen(url))
                                  : original.apply(this, arguments);
    };
  });

  if (window.fetch) {
    var originalFetch = window.fetch;
    window.fetch = function (input, init) {
      var screen = currentScreen();
      var url = typeof input === "string" ? input : (input && input.url) || "";
      if (screen && sameOrigin(url)) {
        init = Object.assign({}, init || {});
        var headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
        headers.set("X-Phenomix-Screen", screen);
        init.headers = headers;
      }
      return originalFetch.call(this, input, init);
    };
  }
})();
