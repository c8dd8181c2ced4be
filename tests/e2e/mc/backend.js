#!/usr/bin/env node
// A Minecraft test backend made from npm minecraft-protocol (a third-party server), for the
// mc-proxy e2e tests and bench/mc. Offline mode, one fixed version.
//
//   node backend.js --port P [--host 127.0.0.1] [--version 1.20.4|any] [--motd TEXT] [--name TAG]
//                   [--compression on|off] [--proxy-protocol off|optional|required]
//                   [--pidfile FILE] [--max-players N] [--quiet]
//
// stdout is JSON lines, one event each:
//   {"event":"ready","port":P,"version":V,"name":TAG,"compression":bool,"proxy_protocol":MODE}
//   {"event":"ping","host":H,"port":N,"protocol":N,"peer":"ip:port","proxy":"ip:port"|null}
//   {"event":"login","username":U,"host":H,"port":N,"protocol":N,"peer":..,"proxy":..}  (Login Success)
//   {"event":"join","username":U}                                   (play state reached)
//   {"event":"chat","username":U,"message":M}
//   {"event":"proxy_header","version":1|2,"source":"ip:port"|null} / {"event":"error",...}
// The handshake host is logged exactly as received (Forge markers, trailing dots included).
// On join the player gets a system message "[TAG] welcome U host=H proxy=SRC|none", and each
// chat message M comes back as "[TAG] M". The status MOTD is "MOTD [TAG]".
// --version any is a version-aware server (minecraft-protocol `version: false`): a status ping
// is answered with the client's own version and protocol (as ViaVersion does); the play-state
// packets it writes after a login are 1.20.4's, so log in with 1.20.4 only.
// Bad input never takes the process down: every error is caught and logged.
'use strict'
const net = require('net')
const fs = require('fs')
const path = require('path')
const mc = require('minecraft-protocol')
const nbt = require('prismarine-nbt')

const parseArgs = require('./args')

const args = parseArgs(process.argv.slice(2))
if (args._.length) throw new Error('unexpected argument ' + args._[0])
const port = Number(args.port || 25566)
const host = args.host || '127.0.0.1'
const version = args.version || '1.20.4'
const anyVersion = version === 'any'
const name = String(args.name || 'backend')
const motd = String(args.motd === undefined ? 'backend' : args.motd)
const compression = (args.compression || 'on') !== 'off'
let ppMode = args['proxy-protocol'] === true ? 'required' : (args['proxy-protocol'] || 'off')
if (!['off', 'optional', 'required'].includes(ppMode)) ppMode = 'required'
const quiet = !!args.quiet

function log (ev) {
  if (quiet && ev.event !== 'ready' && ev.event !== 'fatal') return
  try { process.stdout.write(JSON.stringify(ev) + '\n') } catch (_) {}
}
process.on('uncaughtException', (e) => log({ event: 'error', where: 'uncaught', error: String(e && e.stack || e).slice(0, 500) }))
process.on('unhandledRejection', (e) => log({ event: 'error', where: 'rejection', error: String(e).slice(0, 500) }))
process.stdout.on('error', () => {})   // a reader that went away must not kill us
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))


const mcData = require('minecraft-data')(anyVersion ? '1.20.4' : version)
if (!mcData) { log({ event: 'fatal', error: 'unsupported version ' + version }); process.exit(2) }

function chatText (text) {
  return mcData.supportFeature('chatPacketsUseNbtComponents')
    ? nbt.comp({ text: nbt.string(text) })
    : JSON.stringify({ text })
}

function sendSystem (client, text) {
  if (mcData.supportFeature('signedChat')) {               // 1.19+: system_chat
    client.write('system_chat', { content: chatText(text), isActionBar: false, type: 1 })
  } else {                                                  // pre-1.19: chat, position 1 = system
    client.write('chat', { message: JSON.stringify({ text }), position: 1, sender: '00000000-0000-0000-0000-000000000000' })
  }
}

// With the PROXY front enabled, the minecraft-protocol server listens on an ephemeral loopback
// port nobody connects to; the front hands it each socket after stripping the header.
const server = mc.createServer({
  'online-mode': false,
  host,
  port: ppMode === 'off' ? port : 0,
  version: anyVersion ? false : version,
  motd: motd + ' [' + name + ']',
  maxPlayers: Number(args['max-players'] || 20),
  validateChannelProtocol: false,
  hideErrors: true,
  keepAlive: true,
  errorHandler: (client, err) => {
    log({ event: 'error', where: 'client', peer: peerOf(client), error: String(err && err.message || err).slice(0, 300) })
    try { client.end(String(err && err.message || err)) } catch (_) {}
  },
  beforePing: (response, client) => {
    log({ event: 'ping', host: client.serverHost, port: client.serverPort, protocol: client.protocolVersion, peer: peerOf(client), proxy: proxyOf(client) })
    return response
  },
  beforeLogin: (client) => {
    if (compression) return
    // minecraft-protocol hard-codes Set Compression (threshold 256) right after this hook:
    // drop that packet and keep this connection's compressor off.
    const write = client.write
    client.write = function (packetName, params) {
      if (packetName === 'compress') { client.write = write; return }
      return write.call(this, packetName, params)
    }
    Object.defineProperty(client, 'compressionThreshold', { configurable: true, get () { return -2 }, set (_) {} })
  }
})

function peerOf (client) {
  const s = client && client.socket
  if (!s) return null
  return (s.rproxyPeer) || (s.remoteAddress + ':' + s.remotePort)
}
function proxyOf (client) {
  const s = client && client.socket
  return (s && s.rproxySource) || null
}

server.on('error', (e) => log({ event: 'error', where: 'server', error: String(e && e.message || e) }))

server.on('connection', (client) => {
  client.on('error', () => {})     // the login plugin's handler logs; this only keeps us alive
})

// 'login': Login Success sent (1.20.2+: the configuration state comes next, then 'playerJoin')
server.on('login', (client) => {
  log({ event: 'login', username: client.username, host: client.serverHost, port: client.serverPort, protocol: client.protocolVersion, peer: peerOf(client), proxy: proxyOf(client) })
})

server.on('playerJoin', (client) => {
  try {
    log({ event: 'join', username: client.username })
    client.write('login', {
      ...mcData.loginPacket,
      enforceSecureChat: false,
      entityId: client.id,
      isHardcore: false,
      gameMode: 0,
      previousGameMode: 1,
      hashedSeed: [0, 0],
      maxPlayers: server.maxPlayers,
      viewDistance: 10,
      reducedDebugInfo: false,
      enableRespawnScreen: true,
      isDebug: false,
      isFlat: false,
      dimension: 0,            // pre-1.16 fields (no loginPacket in minecraft-data there)
      difficulty: 0,
      levelType: 'default'
    })
    client.write('position', { x: 0, y: 256, z: 0, yaw: 0, pitch: 0, flags: 0x00, teleportId: 1 })
    sendSystem(client, `[${name}] welcome ${client.username} host=${client.serverHost} proxy=${proxyOf(client) || 'none'}`)
    const onChat = (packet) => {
      try {
        log({ event: 'chat', username: client.username, message: packet.message })
        sendSystem(client, `[${name}] ${packet.message}`)
      } catch (e) { log({ event: 'error', where: 'chat', error: String(e) }) }
    }
    client.on('chat', onChat)            // pre-1.19
    client.on('chat_message', onChat)    // 1.19+
    client.on('end', (reason) => log({ event: 'leave', username: client.username, reason: String(reason) }))
  } catch (e) { log({ event: 'error', where: 'join', error: String(e && e.stack || e).slice(0, 500) }) }
})

// ---- PROXY protocol front (v1 text and v2 binary), then hand over to minecraft-protocol ----
const V2SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

// -> {need: true} | {error} | {len, version, source}
function parseProxyHeader (buf) {
  if (buf.length >= 1 && buf[0] === 0x50) {                       // 'P': v1 candidate
    const want = Buffer.from('PROXY ')
    const n = Math.min(buf.length, want.length)
    if (!buf.subarray(0, n).equals(want.subarray(0, n))) return { error: 'not a PROXY header' }
    const end = buf.indexOf('\r\n')
    if (end < 0) return buf.length > 107 ? { error: 'v1 header too long' } : { need: true }
    if (end + 2 > 107) return { error: 'v1 header too long' }
    const parts = buf.subarray(6, end).toString('latin1').split(' ')
    if (parts[0] === 'UNKNOWN') return { len: end + 2, version: 1, source: null }
    if ((parts[0] !== 'TCP4' && parts[0] !== 'TCP6') || parts.length !== 5) return { error: 'bad v1 header' }
    if (net.isIP(parts[1]) === 0 || net.isIP(parts[2]) === 0) return { error: 'bad v1 address' }
    return { len: end + 2, version: 1, source: `${parts[1]}:${parts[3]}` }
  }
  if (buf.length >= 1 && buf[0] === 0x0d) {                       // v2 candidate
    const n = Math.min(buf.length, 12)
    if (!buf.subarray(0, n).equals(V2SIG.subarray(0, n))) return { error: 'not a PROXY header' }
    if (buf.length < 16) return { need: true }
    const verCmd = buf[12]; const fam = buf[13]; const len = buf.readUInt16BE(14)
    if ((verCmd >> 4) !== 2) return { error: 'bad v2 version' }
    if (buf.length < 16 + len) return { need: true }
    const body = buf.subarray(16, 16 + len)
    if ((verCmd & 0xf) === 0) return { len: 16 + len, version: 2, source: null }   // LOCAL
    if (fam === 0x11 && len >= 12) {
      return { len: 16 + len, version: 2, source: `${Array.from(body.subarray(0, 4)).join('.')}:${body.readUInt16BE(8)}` }
    }
    if (fam === 0x21 && len >= 36) {
      const h = []
      for (let i = 0; i < 16; i += 2) h.push(body.readUInt16BE(i).toString(16))
      return { len: 16 + len, version: 2, source: `[${h.join(':')}]:${body.readUInt16BE(32)}` }
    }
    return { len: 16 + len, version: 2, source: null }
  }
  return { error: 'not a PROXY header' }
}

function handOver (socket, rest, source) {
  socket.rproxySource = source
  if (rest.length) socket.unshift(rest)
  server.socketServer.emit('connection', socket)
}

if (ppMode !== 'off') {
  const front = net.createServer((socket) => {
    socket.on('error', () => {})
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => { log({ event: 'error', where: 'proxy_header', error: 'timeout' }); socket.destroy() }, 5000)
    const onData = (chunk) => {
      try {
        buf = Buffer.concat([buf, chunk])
        const r = parseProxyHeader(buf)
        if (r.need) return
        socket.removeListener('data', onData)
        socket.pause()
        clearTimeout(timer)
        if (r.error) {
          if (ppMode === 'optional' && r.error === 'not a PROXY header') {
            log({ event: 'proxy_header', version: null, source: null })
            return handOver(socket, buf, null)
          }
          log({ event: 'error', where: 'proxy_header', error: r.error, peer: socket.remoteAddress + ':' + socket.remotePort })
          return socket.destroy()
        }
        log({ event: 'proxy_header', version: r.version, source: r.source })
        handOver(socket, buf.subarray(r.len), r.source)
      } catch (e) {
        log({ event: 'error', where: 'proxy_header', error: String(e) })
        socket.destroy()
      }
    }
    socket.on('data', onData)
  })
  front.on('error', (e) => { log({ event: 'fatal', error: String(e) }); process.exit(1) })
  server.on('listening', () => front.listen({ port, host, backlog: 4096 }, ready))
} else {
  server.on('listening', ready)
}

function ready () {
  if (args.pidfile) {     // only once listening: a second copy that cannot bind must not take it over
    fs.mkdirSync(path.dirname(path.resolve(args.pidfile)), { recursive: true })
    fs.writeFileSync(args.pidfile, String(process.pid))
  }
  log({ event: 'ready', port, version, name, compression, proxy_protocol: ppMode, pid: process.pid })
}
