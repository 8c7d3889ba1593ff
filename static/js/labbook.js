// Small shared helpers for pages (no framework). Page scripts use window.Labbook.
(function () {
  "use strict";
  function cookie(name) {
    const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  async function api(method, url, body) {
    const opts = { method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET") opts.headers["X-CSRFToken"] = cookie("csrftoken") || "";
    const resp = await fetch(url, opts);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!resp.ok) { const err = new Error((data && data.detail) || resp.statusText); err.status = resp.status; err.data = data; throw err; }
    return data;
  }
  window.Labbook = { cookie, api };
})();
