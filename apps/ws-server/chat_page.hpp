// apps/ws-server/chat_page.hpp: the small chat page served at GET / (config: chat_page), so a
// browser can try the server: pick a name (or paste a token), a room, and talk. Text from the
// server is inserted with textContent, never as HTML.
#pragma once

#include <string_view>

namespace ws_server {

inline constexpr std::string_view chat_page = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ws-server chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px system-ui,sans-serif;margin:0;display:flex;flex-direction:column;height:100vh}
header,footer{display:flex;gap:.5em;padding:.5em;background:#eef}
#log{flex:1;overflow:auto;padding:.5em;white-space:pre-wrap}
input{padding:.3em}#text{flex:1}
.sys{color:#666}.err{color:#a00}
</style></head><body>
<header>
<input id="user" placeholder="your name" value="guest">
<input id="token" placeholder="or a JWT">
<input id="room" placeholder="room" value="lobby">
<button id="connect">connect</button>
<span id="status" class="sys">not connected</span>
</header>
<div id="log" aria-live="polite"></div>
<footer><input id="text" placeholder="message" disabled><button id="send" disabled>send</button></footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let ws = null, next = 0;
function show(text, cls) {
  const d = document.createElement("div");
  d.textContent = text;
  if (cls) d.className = cls;
  $("log").appendChild(d);
  $("log").scrollTop = $("log").scrollHeight;
}
function request(o) { o.id = ++next; ws.send(JSON.stringify(o)); }
$("connect").onclick = () => {
  if (ws) ws.close();
  const q = $("token").value ? "token=" + encodeURIComponent($("token").value) : "user=" + encodeURIComponent($("user").value);
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/?" + q);
  const room = $("room").value;
  ws.onopen = () => { $("status").textContent = "connected"; $("text").disabled = $("send").disabled = false; request({op: "join", room}); };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "message") show("[" + m.room + "] " + m.from + ": " + m.text);
    else if (m.type === "private_message") show("(from " + m.from + ") " + m.text);
    else if (m.type === "presence") show("* " + m.user + " " + (m.event === "join" ? "joined" : "left") + " " + m.room + " (" + m.members + ")", "sys");
    else if (m.type === "error" && m.op === "join" && m.code === "not_found") request({op: "create", room});
    else if (m.type === "error") show("error: " + m.error, "err");
    else if (m.type === "ok" && (m.op === "join" || m.op === "create")) show("in " + m.room + " as " + m.role, "sys");
    else if (m.type !== "ok") show(JSON.stringify(m), "sys");
  };
  ws.onclose = (e) => { $("status").textContent = "closed " + e.code + (e.reason ? " " + e.reason : ""); $("text").disabled = $("send").disabled = true; };
};
function send() {
  const text = $("text").value;
  if (!text || !ws) return;
  request({op: "message", room: $("room").value, text});
  $("text").value = "";
}
$("send").onclick = send;
$("text").onkeydown = (e) => { if (e.key === "Enter") send(); };
</script></body></html>
)html";

}  // namespace ws_server
