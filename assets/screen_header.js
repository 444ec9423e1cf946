/* Phenomix: tell the server which screen every request of this page is for.
 * Dash callbacks do not see the page's URL; this adds the `screen` parameter of the page's
 * current URL as an X-Phenomix-Screen header to every same-origin request the page makes
 * (phenomix_dash/screens.py reads it; the Referer is the fallback). The server checks the
 * name against the screens the user may see, so the header grants nothing by itself. */
(function () {
  "use strict";
  if (!window.fetch || window.__phenomixScreenHeader) { return; }
  window.__phenomixScreenHeader = true;
  var originalFetch = window.fetch;
  function sameOrigin(input) {
    try {
      var url = typeof input === "string" ? input : (input && input.url) || "";
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) { return false; }
  }
  window.fetch = function (input, init) {
    var screen = new URLSearchParams(window.location.search).get("screen");
    if (screen && sameOrigin(input)) {
      init = Object.assign({}, init || {});
      var headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
      headers.set("X-Phenomix-Screen", screen);
      init.headers = headers;
    }
    return originalFetch.call(this, input, init);
  };
})();
