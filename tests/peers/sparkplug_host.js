#!/usr/bin/env node
// A small Sparkplug B host application on Eclipse Tahu's JavaScript codec (npm sparkplug-payload)
// and npm mqtt: a decoder and a command encoder independent of citygate's generated Python module.
//
//   node sparkplug_host.js --port P [--host 127.0.0.1] [--group G] [--host-id H] [--online]
//
// Subscribes spBv1.0/# (QoS 1) and prints every message it receives as one JSON line on stdout:
//   {"topic", "type", "device", "qos", "retain", "timestamp", "seq", "metrics": [{"name", "alias",
//    "type", "datatype", "value", "timestamp", "isHistorical", "isNull", "properties": {key:
//    {"type", "value"}}}]}
// Integers beyond 2^53 are strings. DATA metrics carry only an alias and no datatype (as Sparkplug
// says they should); Tahu's decodePayload cannot type such a value by itself, so this host does
// what a host must: it keeps the alias -> datatype map of the births and hands the payload to Tahu
// with the born datatype filled in ("typedFromBirth": true on such metrics).
//
// With --host-id it is the node's primary host: its will is {"online":false,...} on
// spBv1.0/STATE/<id> (QoS 1, retained), and --online publishes {"online":true,"timestamp":ms} once
// connected. Commands, one per line on stdin (each answered by a {"sent": ...} line):
//   state online|offline [TIMESTAMP]   publish this host's STATE (QoS 1, retained)
//   rebirth EDGE                       NCMD "Node Control/Rebirth" = true, encoded by Tahu
//   dcmd EDGE DEVICE JSON              DCMD with the metrics of JSON ([{"name", "type", "value"}])
//   raw TOPIC HEX                      publish raw bytes (malformed commands)
//   quit                               disconnect cleanly and exit
"use strict";

const readline = require("readline");
const mqtt = require("mqtt");
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const Proto = require("sparkplug-payload/lib/sparkplugPayloadProto");
const Long = require("long");

const RawPayload = Proto.org.eclipse.tahu.protobuf.Payload;

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 1883, group: null, hostId: null, online: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === "--host") args.host = next();
    else if (a === "--port") args.port = Number(next());
    else if (a === "--group") args.group = next();
    else if (a === "--host-id") args.hostId = next();
    else if (a === "--online") args.online = true;
    else {
      process.stderr.write(`sparkplug_host: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  return args;
}

// JSON cannot hold a Long; numbers are exact up to 2^53, larger ones go as strings.
function plain(v) {
  if (Long.isLong(v)) {
    const n = v.toNumber();
    return Number.isSafeInteger(n) ? n : v.toString();
  }
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x);
    return out;
  }
  return v;
}

// alias -> datatype per edge node (aliases are unique across a node and its devices), from births.
const bornTypes = new Map();

function nodeKey(group, edge) {
  return `${group}/${edge}`;
}

function decode(topic, payload) {
  const parts = topic.split("/");
  const [, group, type, edge, device] = parts;
  const raw = RawPayload.decode(payload);
  const key = nodeKey(group, edge);
  if (type === "NBIRTH") bornTypes.set(key, new Map());
  const types = bornTypes.get(key) || new Map();
  if (type === "NBIRTH" || type === "DBIRTH") {
    for (const m of raw.metrics) {
      if (m.alias !== undefined && m.alias !== null && m.datatype) types.set(Long.fromValue(m.alias).toString(), m.datatype);
    }
    bornTypes.set(key, types);
  }
  const typed = [];
  for (const m of raw.metrics) {
    const hasType = m.datatype !== undefined && m.datatype !== null && m.datatype !== 0;
    if (!hasType && m.alias !== undefined && m.alias !== null) {
      const t = types.get(Long.fromValue(m.alias).toString());
      if (t) {
        m.datatype = t;
        typed.push(true);
        continue;
      }
    }
    typed.push(false);
  }
  const decoded = sparkplug.decodePayload(RawPayload.encode(raw).finish());
  const metrics = (decoded.metrics || []).map((m, i) => {
    const out = plain(m);
    out.datatype = raw.metrics[i].datatype || null;
    if (typed[i]) out.typedFromBirth = true;
    if (raw.metrics[i].isNull) out.isNull = true;
    return out;
  });
  return {
    type,
    group,
    edge,
    device: device === undefined ? null : device,
    timestamp: plain(decoded.timestamp),
    seq: decoded.seq === undefined ? null : plain(decoded.seq),
    metrics,
  };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const stateTopic = args.hostId ? `spBv1.0/STATE/${args.hostId}` : null;
  const options = {
    host: args.host,
    port: args.port,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 200,
    clientId: `sparkplug-host-${process.pid}`,
  };
  if (stateTopic) {
    options.will = {
      topic: stateTopic,
      payload: JSON.stringify({ online: false, timestamp: Date.now() }),
      qos: 1,
      retain: true,
    };
  }
  const client = mqtt.connect(options);
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

  const publishState = (online, ts, done) => {
    const body = JSON.stringify({ online, timestamp: ts === undefined ? Date.now() : ts });
    client.publish(stateTopic, body, { qos: 1, retain: true }, (err) => done(err, body));
  };

  client.on("connect", () => {
    const topic = args.group ? `spBv1.0/${args.group}/#` : "spBv1.0/#";
    client.subscribe([topic].concat(stateTopic ? [stateTopic] : []), { qos: 1 }, (err) => {
      if (err) {
        out({ error: `subscribe: ${err.message}` });
        return;
      }
      if (args.online && stateTopic) {
        publishState(true, undefined, (e, body) => out({ connected: true, sent: { topic: stateTopic, body } }));
      } else {
        out({ connected: true });
      }
    });
  });
  client.on("error", (err) => out({ error: err.message }));

  client.on("message", (topic, payload, packet) => {
    const line = { topic, qos: packet.qos, retain: packet.retain };
    if (topic.startsWith("spBv1.0/STATE/")) {
      line.type = "STATE";
      line.state = payload.toString("utf8");
    } else {
      try {
        Object.assign(line, decode(topic, payload));
      } catch (e) {
        line.decodeError = String(e && e.message ? e.message : e);
      }
    }
    out(line);
  });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (text) => {
    const [cmd, ...rest] = text.trim().split(" ");
    const ack = (what) => (err) => out(err ? { error: `${cmd}: ${err.message}` } : { sent: what });
    if (cmd === "state") {
      const [which, ts] = rest;
      publishState(which === "online", ts === undefined ? undefined : Number(ts), (err, body) =>
        ack({ topic: stateTopic, body })(err));
    } else if (cmd === "rebirth") {
      const [edgeNode] = rest;
      const topic = `spBv1.0/${args.group}/NCMD/${edgeNode}`;
      const payload = sparkplug.encodePayload({
        timestamp: Date.now(),
        metrics: [{ name: "Node Control/Rebirth", type: "Boolean", value: true, timestamp: Date.now() }],
      });
      client.publish(topic, Buffer.from(payload), { qos: 0, retain: false }, ack({ topic }));
    } else if (cmd === "dcmd") {
      const [edgeNode, device, ...json] = rest;
      const topic = `spBv1.0/${args.group}/DCMD/${edgeNode}/${device}`;
      const metrics = JSON.parse(json.join(" ")).map((m) => Object.assign({ timestamp: Date.now() }, m));
      const payload = sparkplug.encodePayload({ timestamp: Date.now(), metrics });
      client.publish(topic, Buffer.from(payload), { qos: 0, retain: false }, ack({ topic }));
    } else if (cmd === "raw") {
      const [topic, hex] = rest;
      client.publish(topic, Buffer.from(hex || "", "hex"), { qos: 0, retain: false }, ack({ topic }));
    } else if (cmd === "quit") {
      rl.close();
    } else if (cmd) {
      out({ error: `unknown command ${cmd}` });
    }
  });
  // End of stdin (the test is done or died): go, without leaving a process behind.
  rl.on("close", () => client.end(false, () => process.exit(0)));
}

main();
