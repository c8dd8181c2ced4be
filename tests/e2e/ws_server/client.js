// Scenarios against apps/ws-server with npm `ws` 8 clients; each prints one JSON line with what
// it saw, and the Python test (tests/e2e/ws_server_test.py) checks it.
//   node client.js SCENARIO --port N [--token T] [--secret S] ...
"use strict";
const path = require("path");
const WebSocket = require(path.join(__dirname, "..", "node_modules", "ws"));

const args = {};
for (let i = 3; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const base = `ws://127.0.0.1:${args.port}/`;

function out(o) { process.stdout.write(JSON.stringify(o) + "\n"); }
function fail(why) { out({error: why}); process.exit(1); }
setTimeout(() => fail("scenario timed out"), Number(args.timeout || 30000)).unref();

/// A client that records every frame and resolves waits on conditions.
class Client {
  constructor(url, opts = {}) {
    this.frames = [];
    this.waiters = [];
    this.next = 0;
    this.ws = new WebSocket(url, opts);
    this.closed = null;
    this.ws.on("message", (d) => { this.frames.push(JSON.parse(d.toString())); this.poke(); });
    this.ws.on("close", (code, reason) => { this.closed = {code, reason: reason.toString()}; this.poke(); });
    this.ws.on("error", (e) => { this.error = e.message; this.poke(); });
    this.ws.on("open", () => this.poke());
    this.ws.on("unexpected-response", (req, res) => { this.status = res.statusCode; res.resume(); this.poke(); });
  }
  poke() { this.waiters = this.waiters.filter(([cond, done]) => !(cond() && (done(), true))); }
  until(cond, what) {
    return new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const t = setTimeout(() => reject(new Error("timed out waiting for " + (typeof what === "function" ? what() : what))), 60000);
      this.waiters.push([cond, () => { clearTimeout(t); resolve(); }]);
    });
  }
  opened() { return new Promise((res, rej) => { this.ws.once("open", res); this.ws.once("close", () => rej(new Error("closed before open"))); }); }
  /// Sends a request and waits for its reply.
  async ask(o) {
    o.id = ++this.next;
    this.ws.send(JSON.stringify(o));
    await this.until(() => this.reply(o.id), `the reply to ${o.op} ${o.id}`);
    return this.reply(o.id);
  }
  reply(id) { return this.frames.find((f) => (f.type === "ok" || f.type === "error") && f.id === id); }
  of(type) { return this.frames.filter((f) => f.type === type); }
}

async function open(url, opts) { const c = new Client(url, opts); await c.opened(); return c; }

const scenarios = {
  /// create/join, messages to others, history replay on join, a private message, leave.
  async rooms() {
    const alice = await open(base + "?user=alice");
    const bob = await open(base + "?user=bob", {perMessageDeflate: true});
    const created = await alice.ask({op: "create", room: "lobby"});
    const joined = await bob.ask({op: "join", room: "lobby"});
    for (const t of ["one", "two <b>three</b>"]) await alice.ask({op: "message", room: "lobby", text: t});
    await bob.until(() => bob.of("message").length === 2, "bob's two messages");
    const carol = await open(base + "?user=carol");
    const cj = await carol.ask({op: "join", room: "lobby"});
    await carol.until(() => carol.of("message").length === 2, "carol's replayed history");
    const pm = await bob.ask({op: "private_message", user: "carol", text: "psst"});
    await carol.until(() => carol.of("private_message").length === 1, "carol's private message");
    const bad = await bob.ask({op: "fly", room: "lobby"});
    await alice.ask({op: "leave", room: "lobby"});
    await bob.until(() => bob.of("presence").some((p) => p.event === "leave" && p.user === "alice"), "alice's leave");
    out({created, joined, carol_join: cj, bob_messages: bob.of("message"), carol_messages: carol.of("message"),
         carol_private: carol.of("private_message"), alice_private: alice.of("private_message"), pm, bad,
         bob_deflate: bob.ws.extensions});
    for (const c of [alice, bob, carol]) c.ws.close(1000);
    await Promise.all([alice, bob, carol].map((c) => c.until(() => c.closed, "close")));
    out({closes: [alice, bob, carol].map((c) => c.closed)});
  },

  /// One connection attempt: prints the HTTP status of a refusal, or the user the server saw.
  async connect() {
    const headers = {};
    if (args.origin) headers.Origin = args.origin;
    if (args.bearer) headers.Authorization = "Bearer " + args.bearer;
    if (args.cookie) headers.Cookie = args.cookie;
    const c = new Client(base + (args.query || ""), {headers});
    await c.until(() => c.status || c.ws.readyState === WebSocket.OPEN || c.closed, "open or refusal");
    if (c.status) return out({status: c.status});
    if (c.ws.readyState !== WebSocket.OPEN) return out({closed: c.closed, error: c.error});
    const r = await c.ask({op: "create", room: "r-" + Math.random().toString(36).slice(2)});
    const m = await c.ask({op: "members", room: r.room});
    out({opened: true, create: r, members: m.members});
    c.ws.close(1000);
  },

  /// Sends messages as fast as allowed until the server closes the connection.
  async flood() {
    const c = await open(base + "?user=flooder");
    await c.ask({op: "create", room: "flood"});
    let sent = 0;
    while (!c.closed && sent < Number(args.count || 200)) {
      c.ws.send(JSON.stringify({op: "message", room: "flood", text: "x" + sent, id: 1000 + sent}));
      sent++;
    }
    await c.until(() => c.closed, "the server's close");
    out({sent, ok: c.frames.filter((f) => f.type === "ok" && f.op === "message").length, closed: c.closed});
  },

  /// Readers in a room and one writer: every reader must get every message. The room is made
  /// first (so a slow reader started by the test can join it), then `ready` is printed; on a
  /// line on stdin the writer sends `count` messages of `size` bytes.
  async fanout() {
    const n = Number(args.readers || 3), count = Number(args.count || 1000), size = Number(args.size || 1000);
    const writer = await open(base + "?user=writer");
    await writer.ask({op: "create", room: "flow", max_members: 100});
    const readers = [];
    for (let i = 0; i < n; i++) {
      const r = await open(base + "?user=reader" + i);
      await r.ask({op: "join", room: "flow"});
      readers.push(r);
    }
    out({ready: true});
    await new Promise((res) => process.stdin.once("data", res));
    const text = "m".repeat(size);
    const got = (r) => r.of("message").filter((m) => m.from === "writer").length;
    const t0 = Date.now();
    for (let i = 0; i < count; i++) {
      writer.ws.send(JSON.stringify({op: "message", room: "flow", text: text + i}));
      // Members that keep up (the writer reads its own echoes too): the writer stays at most ~40
      // messages ahead of every one of them, so only the member that never reads can overflow
      // its queue and meet the policy.
      if (i % 20 === 19)
        await Promise.all([writer, ...readers].map((r, k) => r.until(() => got(r) >= i - 20,
            () => `member ${k} (0: the writer) to keep up (message ${i}, it has ${got(r)}, closed ${JSON.stringify(r.closed)}; ` +
                  `the writer has ${writer.of("message").length} echoes, closed ${JSON.stringify(writer.closed)})`)));
    }
    await Promise.all(readers.map((r) => r.until(() => got(r) === count, "every message")));
    const inOrder = readers.every((r) => r.of("message").every((m, i, a) => i === 0 || m.msg_id === a[i - 1].msg_id + 1));
    out({delivered: readers.map(got), in_order: inOrder, ms: Date.now() - t0});
    for (const r of [writer, ...readers]) r.ws.close(1000);
  },
};

if (!scenarios[process.argv[2]]) fail("unknown scenario " + process.argv[2]);
scenarios[process.argv[2]]().catch((e) => fail(e.message)).then(() => setTimeout(() => process.exit(0), 200));
