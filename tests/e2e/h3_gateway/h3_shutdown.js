// Debian Chromium (puppeteer-core) sends 10 slow requests over HTTP/3 to apps/h3-gateway and
// waits for their answers; the test sends SIGTERM to the gateway while they are in flight.
// Prints {"sent": 10} once the page is loaded and the requests are started, then one JSON line
// with how many came back 200 and the protocols used; tests/e2e/h3_gateway_h3_test.py checks it.
//   node h3_shutdown.js --port N --spki BASE64 [--chromium /usr/bin/chromium] [--timeout MS]
"use strict";
const {origin, wait, out, withBrowser} = require("./chromium");

withBrowser(async (browser) => {
  const page = await browser.newPage();
  await page.goto(origin + "/page", {waitUntil: "load", timeout: wait});
  await page.evaluate(() => {
    window.results = Promise.all(Array.from({length: 10}, (_, i) => fetch(`/slow/${i}`).then(
        async (r) => ({status: r.status, body: await r.json()}), (e) => ({status: 0, error: String(e)}))));
  });
  out({sent: 10});
  const r = await page.evaluate(async () => {
    const all = await window.results;
    const protos = performance.getEntriesByType("resource").filter((e) => e.name.includes("/slow/")).map((e) => e.nextHopProtocol);
    return {ok: all.filter((x, i) => x.status === 200 && x.body.path === `/slow/${i}`).length, errors: all.filter((x) => x.status !== 200),
            protocols: [...new Set(protos)]};
  });
  out(r);
});
