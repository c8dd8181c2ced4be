// Debian Chromium (headless, driven by npm puppeteer-core) talking HTTP/3 to apps/h3-gateway:
// QUIC forced on for the gateway's origin, its self-signed certificate trusted by SPKI hash.
// Loads /page, then from the page: a GET, and a POST of --post-bytes bytes, each through the
// gateway to its backend. Prints one JSON line with the protocol each used (Resource Timing's
// nextHopProtocol) and what came back; tests/e2e/h3_gateway_h3_test.py checks it.
//   node h3_browser.js --port N --spki BASE64 [--chromium /usr/bin/chromium] [--timeout MS]
//                      [--post-bytes N] [--parallel N]
"use strict";
const {args, origin, wait, out, withBrowser} = require("./chromium");

withBrowser(async (browser) => {
  const page = await browser.newPage();
  const resp = await page.goto(origin + "/page", {waitUntil: "load", timeout: wait});
  const result = {chromium: await browser.version(), page_status: resp.status(), page_body: await resp.text()};
  result.page_protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  Object.assign(result, await page.evaluate(async (postBytes, parallel) => {
    const proto = (url) => {
      const e = performance.getEntriesByType("resource").filter((r) => r.name === url);
      return e.length ? e[e.length - 1].nextHopProtocol : "none";
    };
    const o = {};
    const get = await fetch("/get?x=1");
    o.get_status = get.status;
    o.get_body = await get.json();
    o.get_protocol = proto(location.origin + "/get?x=1");
    const body = new Uint8Array(postBytes);
    for (let i = 0; i < body.length; ++i) body[i] = (i * 31 + 7) & 0xff;
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", body)), (b) => b.toString(16).padStart(2, "0")).join("");
    const post = await fetch("/post", {method: "POST", body, headers: {"content-type": "application/octet-stream"}});
    o.post_status = post.status;
    o.post_body = await post.json();
    o.post_protocol = proto(location.origin + "/post");
    o.post_sha = digest;
    // Several requests at once on the connection (streams multiplexed).
    const many = await Promise.all(Array.from({length: parallel}, (_, i) => fetch(`/many/${i}`).then(async (r) => ({status: r.status, body: await r.json()}))));
    o.many_ok = many.filter((m) => m.status === 200 && m.body.path === `/many/${many.indexOf(m)}`).length;
    o.many_protocols = [...new Set(Array.from({length: parallel}, (_, i) => proto(location.origin + `/many/${i}`)))];
    return o;
  }, Number(args["post-bytes"] || 1048576 + 12345), Number(args.parallel || 20)));
  out(result);
});
