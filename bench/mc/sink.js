#!/usr/bin/env node
// bench/mc/sink.js: a raw TCP backend for bench/mc/run (not a Minecraft server).
//   node sink.js --port P --mode blast   after the first bytes (the replayed hello) arrive, send
//                                        1 MiB chunks as fast as the peer takes them
//   node sink.js --port P --mode hold    read and discard; keep every connection open (idle test)
// Prints "ready" when listening and, on SIGTERM, {"connections": N} before exiting.
'use strict'
const net = require('net')
const o = {}
for (let i = 2; i < process.argv.length; i += 2) o[process.argv[i].slice(2)] = process.argv[i + 1]
const port = Number(o.port)
const mode = o.mode || 'hold'
const chunk = Buffer.alloc(1 << 20, 0x61)
let connections = 0
const server = net.createServer((s) => {
  connections++
  s.on('error', () => {})
  if (mode === 'blast') {
    let started = false
    const pump = () => { while (s.write(chunk)) { if (s.destroyed) return } }
    s.on('drain', pump)
    s.on('data', () => { if (!started) { started = true; pump() } })
  } else {
    s.on('data', () => {})
  }
})
server.maxConnections = 100000
server.listen({ port, host: '127.0.0.1', backlog: 8192 }, () => process.stdout.write('ready\n'))
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ connections }) + '\n'); process.exit(0) })
