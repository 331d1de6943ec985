// Boots Swagger UI for the Beacon API docs page. This lives in its own file,
// not an inline <script>, so the page works under `script-src 'self'`.
(function () {
  "use strict";

  // The server templates these into index.html; reading them here keeps
  // this file static so it can be embedded and cached as-is.
  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  }

  var specURL = meta("openapi-url");
  var base = meta("docs-base") || "./";

  window.ui = SwaggerUIBundle({
    url: specURL,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: true,
    // OAuth2 providers need an absolute redirect URL; it must point at the
    // vendored oauth2-redirect.html served next to this page.
    oauth2RedirectUrl: new URL(base + "oauth2-redirect.html", window.location.href).href,
    // The default validator badge loads an image from validator.swagger.io,
    // which breaks offline use and is blocked by our CSP anyway.
    validatorUrl: null,
    // Never let ?url=/?configUrl= in the page URL point the UI (and any
    // persisted credentials) at a different spec.
    queryConfigEnabled: false
  });
})();
