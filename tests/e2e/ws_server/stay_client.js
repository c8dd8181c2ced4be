// An npm `ws` client that stays connected until the server closes the connection (tests/e2e/
// ws_server_ban_kick_test.py): prints {"opened":true} once upgraded, then {"closed":{"code":N,
// "reason":"..."}} when the server closes it, and exits 0; an error or the timeout: {"error":..}, exit 1.
//   node stay_client.js --port N --user NAME [--local SRC_IP] [--timeout MS]
"use strict";
const path = require("path");
const WebSocket = require(path.join(__dirname, "..", "node_modules", "ws"));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
function out(o) { process.stdout.write(JSON.stringify(o) + "\n"); }
function fail(why) { out({error: why}); process.exit(1); }
setTimeout(() => fail("timed out"), Number(args.timeout || 60000)).unref();

const ws = new WebSocket(`ws://127.0.0.1:${args.port}/?user=${encodeURIComponent(args.user || "tester")}`,
                         {localAddress: args.local || undefined});
ws.on("open", () => out({opened: true}));
ws.on("message", () => {});
ws.on("unexpected-response", (req, res) => fail("upgrade refused: " + res.statusCode));
ws.on("error", (e) => fail(e.message));
ws.on("close", (code, reason) => { out({closed: {code, reason: reason.toString()}}); process.exit(0); });
