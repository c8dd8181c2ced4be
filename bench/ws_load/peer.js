// bench/ws_load/peer.js: the Node `ws` 8 peer of apps/ws-server in bench/ws_load/run. It
// speaks the subset of docs/ws-server.md the load client uses, doing the same work the server
// does for it: create, join, leave and message, each request read strictly (one JSON object,
// members of the right types, text and names validated and bounded), one reply per request,
// presence events on join and leave, a room message encoded once (JSON with < > & ' escaped
// as the server does) and sent to every member (the sender too), the last 100 messages kept
// per room and replayed on join.
//
//   node bench/ws_load/peer.js PORT [TLS_PORT CERT KEY]
//       prints "listening PORT" once it listens on 127.0.0.1; with TLS_PORT, the same server over
//       TLS there too (an https server from CERT and KEY, PEM files: wss://), "listening TLS_PORT".
//
// The user is the `user` query parameter of the upgrade request (as ws-server's with
// `anonymous: true`, which run uses), or "u" and a counter.
'use strict';
const fs = require('fs');
const https = require('https');
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '../../tests/e2e/node_modules/ws'));

const port = Number(process.argv[2] || 0);
const MAX_REQUEST = 16384, MAX_TEXT = 4096, MAX_NAME = 64, MAX_MEMBERS = 1000, HISTORY = 100;

const rooms = new Map();  // name -> { members: Set<ws>, roles: Map<user, role>, last_id, history: [] }
let next_user = 0;

const escape = (s) => s.replace(/[<>&']/g, (c) => '\\u00' + c.charCodeAt(0).toString(16).padStart(2, '0'));
const encode = (obj) => escape(JSON.stringify(obj));
const bad_name = (s) => typeof s !== 'string' || s.length === 0 || Buffer.byteLength(s) > MAX_NAME ||
  /[\u0000-\u001f\u007f-\u009f<>&"'\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/.test(s) ||
  s.trim() !== s;
const bad_text = (s) => typeof s !== 'string' || s.length === 0 ||
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(s);
const TAKES = { create: ['room', 'private', 'password', 'max_members'], join: ['room', 'password'],
                leave: ['room'], message: ['room', 'text'] };

function send_all(room, frame) {
  for (const m of room.members) m.send(frame);
}

function handle(ws, data) {
  let req;
  const reply = (fields) => ws.send(encode(Object.assign({ type: 'ok' }, req.id !== undefined ? { id: req.id } : {},
                                                         { op: req.op }, fields)));
  const fail = (code, error) => ws.send(encode(Object.assign({ type: 'error' },
    req && req.id !== undefined ? { id: req.id } : {}, { op: req && typeof req.op === 'string' ? req.op : 'invalid', code, error })));
  if (data.length > MAX_REQUEST) return fail('too_large', 'request too large');
  try { req = JSON.parse(data); } catch (e) { req = undefined; return fail('bad_request', 'malformed JSON'); }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) { req = undefined; return fail('bad_request', 'not an object'); }
  const keys = Object.keys(req);
  if (keys.length > 16) return fail('too_large', 'too many members');
  for (const k of keys) if (req[k] !== null && typeof req[k] === 'object') return fail('too_large', 'nested');
  const takes = TAKES[req.op];
  if (!takes) return fail('unknown_op', 'unknown operation');
  for (const k of keys) if (k !== 'op' && k !== 'id' && !takes.includes(k)) return fail('bad_request', 'unexpected ' + k);
  if (bad_name(req.room)) return fail('invalid_name', 'invalid room name');
  const room = rooms.get(req.room);
  switch (req.op) {
    case 'create': {
      if (room) return fail('exists', 'room exists');
      const max = req.max_members === undefined ? MAX_MEMBERS : req.max_members;
      if (!Number.isInteger(max) || max < 1 || max > MAX_MEMBERS) return fail('limit', 'max_members');
      const r = { members: new Set([ws]), roles: new Map([[ws.user, 'owner']]), last_id: 0, history: [], max };
      rooms.set(req.room, r);
      ws.rooms.add(req.room);
      return reply({ room: req.room, role: 'owner', members: 1, last_id: 0, private: !!req.private, max_members: max });
    }
    case 'join': {
      if (!room) return fail('not_found', 'no such room');
      if (room.members.has(ws)) return fail('already_member', 'already in the room');
      if (room.members.size >= room.max) return fail('full', 'the room is full');
      room.members.add(ws);
      ws.rooms.add(req.room);
      const role = room.roles.get(ws.user) || 'member';
      reply({ room: req.room, role, members: room.members.size, last_id: room.last_id,
              first_id: room.history.length ? room.history[0].id : room.last_id + 1, private: false, max_members: room.max });
      for (const h of room.history) ws.send(h.frame);
      return send_all(room, encode({ type: 'presence', room: req.room, event: 'join', user: ws.user, members: room.members.size }));
    }
    case 'leave': {
      if (!room || !room.members.has(ws)) return fail('not_member', 'not in the room');
      leave(ws, req.room, room);
      return reply({ room: req.room });
    }
    case 'message': {
      if (!room || !room.members.has(ws)) return fail('not_member', 'not in the room');
      if (bad_text(req.text)) return fail('invalid_text', 'invalid text');
      if (Buffer.byteLength(req.text) > MAX_TEXT) return fail('too_long', 'text too long');
      const id = ++room.last_id;
      const frame = encode({ type: 'message', room: req.room, msg_id: id, from: ws.user,
                             role: room.roles.get(ws.user) || 'member', text: req.text, ts: Date.now() });
      room.history.push({ id, frame });
      if (room.history.length > HISTORY) room.history.shift();
      reply({ room: req.room, msg_id: id });
      return send_all(room, frame);
    }
  }
}

function leave(ws, name, room) {
  room.members.delete(ws);
  ws.rooms.delete(name);
  if (room.members.size > 0)
    send_all(room, encode({ type: 'presence', room: name, event: 'leave', user: ws.user, members: room.members.size }));
}

const options = { maxPayload: MAX_REQUEST + 1, perMessageDeflate: false, clientTracking: false };
const wss = new WebSocketServer(Object.assign({ host: '127.0.0.1', port, backlog: 4096 }, options));
wss.on('connection', connected);
wss.on('listening', () => console.log('listening ' + wss.address().port));
if (process.argv[3]) {  // wss: the same rooms over TLS
  const server = https.createServer({ cert: fs.readFileSync(process.argv[4]), key: fs.readFileSync(process.argv[5]) });
  const secure = new WebSocketServer(Object.assign({ server }, options));
  secure.on('connection', connected);
  server.listen(Number(process.argv[3]), '127.0.0.1', 4096, () => console.log('listening ' + server.address().port));
}

function connected(ws, req) {
  const q = new URL(req.url, 'http://x').searchParams.get('user');
  ws.user = q && !bad_name(q) ? q : 'u' + next_user++;
  ws.rooms = new Set();
  ws.on('message', (data, is_binary) => {
    if (is_binary) return ws.close(1003, 'text frames only');
    handle(ws, data.toString());
  });
  ws.on('close', () => {
    for (const name of ws.rooms) {
      const room = rooms.get(name);
      if (room) leave(ws, name, room);
    }
  });
  ws.on('error', () => {});
}
