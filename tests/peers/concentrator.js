#!/usr/bin/env node
// A simulated LoRa concentrator: a Semtech UDP packet forwarder (protocol v1/v2) whose LoRaWAN
// 1.0.x uplinks are built and encrypted by npm lora-packet, an encoder independent of citygate.
//
//   node concentrator.js [send] --port 1700 --devices devices.json [--count N] [--interval MS]
//   node concentrator.js frames --devices devices.json [--count N]      (JSON lines, no network)
//   node concentrator.js pull --port 1700 [--count N]                   (PULL_DATA keep-alives)
//   node concentrator.js stat --port 1700                               (a PUSH_DATA with stat only)
//   node concentrator.js flood --port 1700 --devices devices.json --rate 5000 --duration 3
//   node concentrator.js downlink --port 1700 --devices devices.json [--tx-ack LIST] [--expect N]
//       PULL_DATA first, then the devices' frames (set "confirmed": true for an ACK); every
//       PULL_RESP is decoded by lora-packet (MIC with the NwkSKey, FRMPayload with the AppSKey) and
//       answered with a TX_ACK carrying the next error of --tx-ack (NONE, TOO_LATE, ...; the last
//       repeats; "-" sends no TX_ACK). Waits for --expect PULL_RESP (1) or --wait MS (3000).
//   node concentrator.js join --port 1700 --dev-eui HEX --join-eui HEX --app-key HEX --dev-nonce HEX
//       PULL_DATA, then an OTAA join-request built by lora-packet (fromFields, MIC with the AppKey);
//       every PULL_RESP is decrypted (decryptJoinAccept) and verified (verifyMIC) by lora-packet and
//       answered like `downlink`; the summary has the join-accept's fields and the session keys
//       lora-packet derives from them (generateSessionKeys).
//
// Devices: a JSON file holding an array of
//   {"id": "parking-bay-0042", "dev_addr": "26011F42",
//    "nwk_s_key": "<32 hex>", "app_s_key": "<32 hex>",
//    "fport": 1, "payloads": ["80", "00"],          hex; frame k carries payloads[k % n]
//    "fcnt": 0,                                      first frame counter (full 32 bits)
//    "confirmed": false, "rssi": -57, "lsnr": 9.5, "freq": 868.1, "datr": "SF7BW125"}
// or --device DEVADDR:NWKSKEY:APPSKEY:FPORT:HEX[,HEX...][:FCNT] (repeatable).
//
// Options:
//   --host H          server address (127.0.0.1)        --port P       server port (1700)
//   --count N         frames per device (1; 0 = until SIGTERM)  --interval MS  between rounds (1000)
//   --fcnt N          first frame counter for every device (overrides the device's "fcnt")
//   --copies N        every frame is heard by N gateways (EUI+i, RSSI -3 dB each): dedup tests
//   --eui HEX         gateway EUI (AA555A0000000000)   --version 1|2  protocol version (2)
//   --stat            add a stat object to each PUSH_DATA
//   --ack-timeout MS  wait for each PUSH_ACK / PULL_ACK (1000)
//   --rate N          flood: datagrams per second       --duration S   flood: seconds (3)
//   --tx-ack LIST     downlink: TX_ACK errors, comma separated   --expect N / --wait MS  downlink
//   --mix LIST        flood: kinds of junk, comma separated, from: junk, bad_json, bad_base64,
//                     bad_mic, unknown_dev_addr, truncated, crc_failed, replay, oversize
//                     (default: all); the devices' valid frames are sent every --interval ms
//
// The last line on stdout is a JSON summary: sent and acknowledged datagrams, per kind for a
// flood, and the frames sent (dev_addr, fcnt). Exit status 0, or 1 when an ACK was missing
// (send / pull) or the arguments are wrong.
'use strict';

const dgram = require('dgram');
const fs = require('fs');
const path = require('path');
const lora = require(path.join(__dirname, 'node_modules', 'lora-packet'));

function usage(msg) {
  if (msg) process.stderr.write(`concentrator: ${msg}\n`);
  process.stderr.write('usage: node concentrator.js [send|frames|pull|stat|flood] [--port P] [--devices FILE] ...\n' +
                       '       (see the header of this file for every option)\n');
  process.exit(msg ? 2 : 0);
}

function parseArgs(argv) {
  const o = {
    command: 'send', host: '127.0.0.1', port: 1700, devices: [], count: 1, interval: 1000, fcnt: null, copies: 1,
    eui: 'AA555A0000000000', version: 2, stat: false, ackTimeout: 1000, rate: 0, duration: 3, mix: null,
    txAck: ['NONE'], expect: 1, wait: 3000, devEui: null, joinEui: '0000000000000000', appKey: null, devNonce: null,
  };
  let i = 0;
  if (argv.length > 0 && !argv[0].startsWith('--')) o.command = argv[i++];
  if (!['send', 'frames', 'pull', 'stat', 'flood', 'downlink', 'join'].includes(o.command)) usage(`unknown command '${o.command}'`);
  const num = (v, name) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) usage(`${name} needs a number`);
    return n;
  };
  for (; i < argv.length; ++i) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--host': o.host = v; ++i; break;
      case '--port': o.port = num(v, a); ++i; break;
      case '--devices': o.devices.push(...JSON.parse(fs.readFileSync(v, 'utf8'))); ++i; break;
      case '--device': o.devices.push(parseDeviceArg(v)); ++i; break;
      case '--count': o.count = num(v, a); ++i; break;
      case '--interval': o.interval = num(v, a); ++i; break;
      case '--fcnt': o.fcnt = num(v, a); ++i; break;
      case '--copies': o.copies = num(v, a); ++i; break;
      case '--eui': o.eui = v; ++i; break;
      case '--version': o.version = num(v, a); ++i; break;
      case '--stat': o.stat = true; break;
      case '--ack-timeout': o.ackTimeout = num(v, a); ++i; break;
      case '--rate': o.rate = num(v, a); ++i; break;
      case '--duration': o.duration = num(v, a); ++i; break;
      case '--mix': o.mix = v.split(',').filter((s) => s); ++i; break;
      case '--tx-ack': o.txAck = v.split(',').filter((s) => s); ++i; break;
      case '--expect': o.expect = num(v, a); ++i; break;
      case '--wait': o.wait = num(v, a); ++i; break;
      case '--dev-eui': o.devEui = v; ++i; break;
      case '--join-eui': o.joinEui = v; ++i; break;
      case '--app-key': o.appKey = v; ++i; break;
      case '--dev-nonce': o.devNonce = v; ++i; break;
      case '--help': case '-h': usage(); break;
      default: usage(`unknown option '${a}'`);
    }
  }
  if (!/^[0-9a-fA-F]{16}$/.test(o.eui)) usage('--eui needs 16 hex digits');
  if (o.version !== 1 && o.version !== 2) usage('--version must be 1 or 2');
  return o;
}

function parseDeviceArg(s) {
  const p = (s || '').split(':');
  if (p.length < 5) usage('--device needs DEVADDR:NWKSKEY:APPSKEY:FPORT:HEX[,HEX...][:FCNT]');
  return { id: p[0], dev_addr: p[0], nwk_s_key: p[1], app_s_key: p[2], fport: Number(p[3]),
           payloads: p[4].split(','), fcnt: p.length > 5 ? Number(p[5]) : 0 };
}

// One LoRaWAN 1.0.x data uplink, encrypted and signed by lora-packet. The full 32-bit counter
// enters the MIC and the keystream; lora-packet takes its upper 16 bits as FCntMSBytes,
// little-endian (see toolchain.md).
function buildFrame(dev, fcnt, payloadHex) {
  const ms = Buffer.alloc(2);
  ms.writeUInt16LE(Math.floor(fcnt / 65536) & 0xffff, 0);
  const packet = lora.fromFields({
    MType: dev.confirmed ? 'Confirmed Data Up' : 'Unconfirmed Data Up',
    DevAddr: Buffer.from(dev.dev_addr, 'hex'),
    FCtrl: { ADR: false, ACK: false, ADRACKReq: false, FPending: false },
    FCnt: fcnt % 65536,
    FPort: dev.fport === undefined ? 1 : dev.fport,
    payload: Buffer.from(payloadHex, 'hex'),
  }, Buffer.from(dev.app_s_key, 'hex'), Buffer.from(dev.nwk_s_key, 'hex'), undefined, ms);
  return packet.getPHYPayload();
}

function rxpk(phy, dev, copy) {
  return {
    tmst: (Date.now() * 1000) >>> 0, chan: 2, rfch: 0, freq: dev.freq || 868.1, stat: 1, modu: 'LORA',
    datr: dev.datr || 'SF7BW125', codr: '4/5', rssi: (dev.rssi === undefined ? -57 : dev.rssi) - 3 * copy,
    lsnr: (dev.lsnr === undefined ? 9.5 : dev.lsnr) - copy, size: phy.length, data: phy.toString('base64'),
  };
}

function euiPlus(eui, k) {
  return (BigInt('0x' + eui) + BigInt(k)).toString(16).padStart(16, '0');
}

let tokenCounter = Math.floor(Math.random() * 65536);
function header(version, type, eui) {
  const h = Buffer.alloc(12);
  h[0] = version;
  tokenCounter = (tokenCounter + 1) & 0xffff;
  h.writeUInt16BE(tokenCounter, 1);
  h[3] = type;
  Buffer.from(eui, 'hex').copy(h, 4);
  return h;
}

function statObject() {
  const t = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' GMT');
  return { time: t, lati: 47.0488, long: 8.305, alti: 436, rxnb: 2, rxok: 2, rxfw: 2, ackr: 100.0, dwnb: 0, txnb: 0 };
}

function pushData(o, eui, body) {
  return Buffer.concat([header(o.version, 0x00, eui), Buffer.from(JSON.stringify(body))]);
}

// Sends datagrams and matches the ACKs by token.
class Link {
  constructor(o) {
    this.o = o;
    this.sock = dgram.createSocket('udp4');
    this.waiting = new Map();  // token -> resolve
    this.acks = 0;
    this.sent = 0;
    this.sock.on('message', (msg) => {
      if (msg.length < 4 || (msg[3] !== 0x01 && msg[3] !== 0x04)) return;
      ++this.acks;
      const key = msg.readUInt16BE(1);
      const w = this.waiting.get(key);
      if (w) {
        this.waiting.delete(key);
        w(true);
      }
    });
  }
  send(buf) {
    ++this.sent;
    return new Promise((resolve) => this.sock.send(buf, this.o.port, this.o.host, () => resolve()));
  }
  async sendAndWait(buf) {
    const key = buf.readUInt16BE(1);
    const acked = new Promise((resolve) => {
      this.waiting.set(key, resolve);
      setTimeout(() => { if (this.waiting.delete(key)) resolve(false); }, this.o.ackTimeout);
    });
    await this.send(buf);
    return acked;
  }
  close() { this.sock.close(); }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startFcnt(o, dev) { return o.fcnt !== null ? o.fcnt : (dev.fcnt || 0); }
function payloadAt(dev, k) { const p = dev.payloads || ['']; return p[k % p.length]; }

function cmdFrames(o) {
  for (let k = 0; k < o.count; ++k) {
    for (const dev of o.devices) {
      const fcnt = startFcnt(o, dev) + k;
      const payload = payloadAt(dev, k);
      const phy = buildFrame(dev, fcnt, payload);
      process.stdout.write(JSON.stringify({ id: dev.id || dev.dev_addr, dev_addr: dev.dev_addr, fcnt, fport: dev.fport,
                                            payload, phy: phy.toString('hex'), b64: phy.toString('base64') }) + '\n');
    }
  }
  return 0;
}

async function cmdSend(o) {
  const link = new Link(o);
  const frames = [];
  let missing = 0;
  let stop = false;
  // --count 0: until SIGTERM / SIGINT (the demo), then the summary as usual.
  const onSignal = () => { stop = true; };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  for (let k = 0; (o.count === 0 || k < o.count) && !stop; ++k) {
    if (k > 0) await sleep(o.interval);
    for (const dev of o.devices) {
      const fcnt = startFcnt(o, dev) + k;
      const phy = buildFrame(dev, fcnt, payloadAt(dev, k));
      for (let c = 0; c < o.copies; ++c) {
        const body = { rxpk: [rxpk(phy, dev, c)] };
        if (o.stat) body.stat = statObject();
        if (!(await link.sendAndWait(pushData(o, euiPlus(o.eui, c), body)))) ++missing;
      }
      if (o.count !== 0) frames.push({ dev_addr: dev.dev_addr, fcnt });
    }
  }
  link.close();
  console.log(JSON.stringify({ command: 'send', sent: link.sent, acked: link.acks, missing_acks: missing, frames }));
  return missing === 0 ? 0 : 1;
}

async function cmdPull(o) {
  const link = new Link(o);
  let missing = 0;
  for (let k = 0; k < o.count; ++k) {
    if (k > 0) await sleep(o.interval);
    if (!(await link.sendAndWait(header(o.version, 0x02, o.eui)))) ++missing;
  }
  link.close();
  console.log(JSON.stringify({ command: 'pull', sent: link.sent, acked: link.acks, missing_acks: missing }));
  return missing === 0 ? 0 : 1;
}

async function cmdStat(o) {
  const link = new Link(o);
  const ok = await link.sendAndWait(pushData(o, o.eui, { stat: statObject() }));
  link.close();
  console.log(JSON.stringify({ command: 'stat', sent: 1, acked: ok ? 1 : 0, missing_acks: ok ? 0 : 1 }));
  return ok ? 0 : 1;
}

// A pool of bad datagrams of one kind (built once; the flood cycles through them).
function junkPool(kind, o, dev) {
  const eui = o.eui;
  const base = dev ? buildFrame(dev, 1000000, payloadAt(dev, 0)) : Buffer.from('40F17DBE4900020001954378762B11FF0D', 'hex');
  const pool = [];
  for (let i = 0; i < 16; ++i) {
    const phy = Buffer.from(base);
    let body = null;
    switch (kind) {
      case 'junk': pool.push(Buffer.from(Array.from({ length: 8 + i * 7 }, () => Math.floor(Math.random() * 256)))); continue;
      case 'bad_json': pool.push(Buffer.concat([header(o.version, 0, eui), Buffer.from('{"rxpk":[{"stat":1,' + 'x'.repeat(i))])); continue;
      case 'bad_base64': body = { rxpk: [{ ...rxpk(phy, dev || {}, 0), data: 'QPF9vkkAAgAB-UN4disR/w0=' }] }; break;
      case 'bad_mic': phy[phy.length - 1 - (i % 4)] ^= 0x5a; body = { rxpk: [rxpk(phy, dev || {}, 0)] }; break;
      case 'unknown_dev_addr': phy[1] ^= 0xff; phy[2] = i; body = { rxpk: [rxpk(phy, dev || {}, 0)] }; break;
      case 'truncated': body = { rxpk: [rxpk(phy.subarray(0, 5 + (i % 6)), dev || {}, 0)] }; break;
      case 'crc_failed': body = { rxpk: [{ ...rxpk(phy, dev || {}, 0), stat: -1 }] }; break;
      case 'oversize': body = { rxpk: [{ ...rxpk(Buffer.alloc(300 + i, 0x40), dev || {}, 0) }] }; break;
      case 'replay': {
        // A frame the device really sent (counter 0): once the device is past it, a replay.
        const old = dev ? buildFrame(dev, startFcnt(o, dev) + (i % 2), payloadAt(dev, 0)) : base;
        body = { rxpk: [rxpk(old, dev || {}, 0)] };
        break;
      }
      default: usage(`unknown flood kind '${kind}'`);
    }
    pool.push(pushData(o, eui, body));
  }
  return pool;
}

async function cmdFlood(o) {
  if (!(o.rate > 0)) usage('flood needs --rate');
  const kinds = o.mix || ['junk', 'bad_json', 'bad_base64', 'bad_mic', 'unknown_dev_addr', 'truncated', 'crc_failed',
                          'replay', 'oversize'];
  const dev0 = o.devices[0];
  const pools = kinds.map((k) => junkPool(k, o, dev0));
  const link = new Link(o);
  const sentByKind = Object.fromEntries(kinds.map((k) => [k, 0]));
  sentByKind.valid = 0;
  const frames = [];
  const next = new Map(o.devices.map((d) => [d, startFcnt(o, d) + (kinds.includes('replay') ? 2 : 0)]));
  const start = Date.now();
  const end = start + o.duration * 1000;
  let due = 0;        // datagrams owed by the rate so far
  let nextValid = start;
  let k = 0;
  while (Date.now() < end) {
    const now = Date.now();
    if (now >= nextValid) {
      for (const dev of o.devices) {
        const fcnt = next.get(dev);
        next.set(dev, fcnt + 1);
        const phy = buildFrame(dev, fcnt, payloadAt(dev, fcnt));
        const body = { rxpk: [rxpk(phy, dev, 0)] };
        link.send(pushData(o, o.eui, body));
        ++sentByKind.valid;
        frames.push({ dev_addr: dev.dev_addr, fcnt });
      }
      nextValid += o.interval;
    }
    due = Math.floor(((now - start) / 1000) * o.rate);
    const sends = [];
    while (k < due) {
      const which = k % kinds.length;
      const pool = pools[which];
      sends.push(link.send(pool[Math.floor(k / kinds.length) % pool.length]));
      ++sentByKind[kinds[which]];
      ++k;
    }
    await Promise.all(sends);
    await sleep(2);
  }
  await sleep(o.ackTimeout);
  link.close();
  const seconds = (Date.now() - o.ackTimeout - start) / 1000;
  console.log(JSON.stringify({ command: 'flood', seconds, sent: link.sent, rate: Math.round(link.sent / seconds),
                               acked: link.acks, sent_by_kind: sentByKind, frames }));
  return 0;
}

// The packet forwarder's side of a downlink exchange (`downlink` and `join`): PULL_DATA, waiting
// for its PULL_ACK (--ack-timeout), then sendUplinks(send); every PULL_RESP is recorded with its
// txpk's fields (TXPK_FIELDS and `extraFields`), its PHYPayload in hex and what decode(phy, r)
// adds (an exception becomes r.error), and answered with a TX_ACK carrying the next error of
// --tx-ack (the last repeats; "-" sends none). Waits for --expect PULL_RESP or --wait ms.
const TXPK_FIELDS = ['tmst', 'freq', 'datr', 'powe', 'modu', 'codr', 'ipol', 'imme', 'size'];

async function pullRespSession(o, extraFields, decode, sendUplinks) {
  const sock = dgram.createSocket('udp4');
  const resps = [];
  let pullAcked = 0;
  let wake = null;
  sock.on('message', (msg) => {
    if (msg.length >= 4 && msg[3] === 0x04) { ++pullAcked; if (wake) wake(); return; }
    if (msg.length < 5 || msg[3] !== 0x03) return;
    const r = { token: msg.readUInt16BE(1), version: msg[0] };
    try {
      const txpk = JSON.parse(msg.subarray(4).toString()).txpk;
      for (const k of [...TXPK_FIELDS, ...extraFields]) r[k] = txpk[k];
      const phy = Buffer.from(txpk.data, 'base64');
      r.phy = phy.toString('hex');
      decode(phy, r);
    } catch (e) {
      r.error = String(e);
    }
    const err = o.txAck[Math.min(resps.length, o.txAck.length - 1)];
    resps.push(r);
    if (err !== '-') {
      const h = header(o.version, 0x05, o.eui);
      h.writeUInt16BE(r.token, 1);
      r.tx_ack = err;
      sock.send(Buffer.concat([h, Buffer.from(JSON.stringify({ txpk_ack: { error: err } }))]), o.port, o.host);
    }
    if (wake) wake();
  });
  const send = (buf) => new Promise((resolve) => sock.send(buf, o.port, o.host, () => resolve()));
  const until = async (cond, ms) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) {
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, Math.max(1, Math.min(50, end - Date.now()))); });
    }
    return cond();
  };
  await send(header(o.version, 0x02, o.eui));
  await until(() => pullAcked > 0, o.ackTimeout);
  await sendUplinks(send);
  await until(() => resps.length >= o.expect, o.wait);
  sock.close();
  return { pullAcked, resps };
}

// PULL_DATA, the devices' uplinks, and every PULL_RESP decoded and answered with a TX_ACK.
async function cmdDownlink(o) {
  const byAddr = new Map(o.devices.map((d) => [d.dev_addr.toLowerCase(), d]));
  const decode = (phy, r) => {
    const pkt = lora.fromWire(phy);
    r.mtype = pkt.getMType();
    r.dev_addr = pkt.DevAddr ? pkt.DevAddr.toString('hex').toUpperCase() : null;
    r.fcnt = pkt.getFCnt();
    r.ack = pkt.getFCtrlACK();
    r.fport = pkt.getFPort();
    r.fopts = pkt.FOpts ? pkt.FOpts.toString('hex') : '';
    const dev = r.dev_addr ? byAddr.get(r.dev_addr.toLowerCase()) : null;
    if (dev) {
      r.mic_ok = lora.verifyMIC(pkt, Buffer.from(dev.nwk_s_key, 'hex'));
      if (r.fport !== null) {
        r.payload = lora.decrypt(pkt, Buffer.from(dev.app_s_key, 'hex'), Buffer.from(dev.nwk_s_key, 'hex')).toString('hex');
      }
    }
  };
  const uplinks = [];
  const sendUplinks = async (send) => {
    for (let k = 0; k < o.count; ++k) {
      for (const dev of o.devices) {
        const fcnt = startFcnt(o, dev) + k;
        const phy = buildFrame(dev, fcnt, payloadAt(dev, k));
        const rx = rxpk(phy, dev, 0);
        uplinks.push({ dev_addr: dev.dev_addr, fcnt, tmst: rx.tmst, freq: rx.freq, datr: rx.datr });
        await send(pushData(o, o.eui, { rxpk: [rx] }));
      }
    }
  };
  const { pullAcked, resps } = await pullRespSession(o, ['rfch'], decode, sendUplinks);
  console.log(JSON.stringify({ command: 'downlink', pull_acked: pullAcked, uplinks, pull_resp: resps }));
  return 0;
}

// PULL_DATA, one join-request, and every PULL_RESP decrypted and verified as a join-accept.
async function cmdJoin(o) {
  if (!/^[0-9a-fA-F]{16}$/.test(o.devEui || '') || !/^[0-9a-fA-F]{16}$/.test(o.joinEui) ||
      !/^[0-9a-fA-F]{32}$/.test(o.appKey || '') || !/^[0-9a-fA-F]{4}$/.test(o.devNonce || '')) {
    usage('join needs --dev-eui (16 hex), --app-key (32 hex), --dev-nonce (4 hex) [--join-eui (16 hex)]');
  }
  const appKey = Buffer.from(o.appKey, 'hex');
  const devNonce = Buffer.from(o.devNonce, 'hex');
  const decode = (phy, r) => {
    const wire = lora.fromWire(phy);
    r.mtype = wire.getMType();
    const pkt = lora.fromWire(lora.decryptJoinAccept(wire, appKey));
    const b = pkt.getBuffers();
    r.mic_ok = lora.verifyMIC(pkt, null, appKey);
    r.app_nonce = b.AppNonce.toString('hex');
    r.net_id = b.NetID.toString('hex');
    r.dev_addr = b.DevAddr.toString('hex').toUpperCase();
    r.dl_settings = b.DLSettings[0];
    r.rx_delay = b.RxDelay[0];
    r.cflist = b.CFList ? b.CFList.toString('hex') : '';
    const keys = lora.generateSessionKeys(appKey, b.NetID, b.AppNonce, devNonce);
    r.nwk_s_key = keys.NwkSKey.toString('hex');
    r.app_s_key = keys.AppSKey.toString('hex');
  };
  let phy = null;
  let rx = null;
  const sendUplinks = async (send) => {
    const request = lora.fromFields({
      MType: 'Join Request', AppEUI: Buffer.from(o.joinEui, 'hex'), DevEUI: Buffer.from(o.devEui, 'hex'), DevNonce: devNonce,
    }, null, null, appKey);
    phy = request.getPHYPayload();
    rx = rxpk(phy, {}, 0);
    await send(pushData(o, o.eui, { rxpk: [rx] }));
  };
  const { pullAcked, resps } = await pullRespSession(o, [], decode, sendUplinks);
  console.log(JSON.stringify({ command: 'join', pull_acked: pullAcked, join_request: phy.toString('hex'),
                               uplink: { tmst: rx.tmst, freq: rx.freq, datr: rx.datr }, pull_resp: resps }));
  return 0;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.command === 'join') return cmdJoin(o);
  if (o.command !== 'pull' && o.command !== 'stat' && o.devices.length === 0) usage('no devices (--devices FILE or --device ...)');
  switch (o.command) {
    case 'frames': return cmdFrames(o);
    case 'send': return cmdSend(o);
    case 'pull': return cmdPull(o);
    case 'stat': return cmdStat(o);
    case 'flood': return cmdFlood(o);
    case 'downlink': return cmdDownlink(o);
  }
  return 2;
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`concentrator: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
