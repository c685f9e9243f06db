'use strict';
// One npm AMI client against bench/stream's fake server: log in with events on, count every event; answer
// the warm-up marker (Event: UserEvent / UserEvent: WarmupEnd) with a Ping, which starts the measured stream;
// at the end marker (UserEvent: StreamEnd) time sequential Pings. Prints one JSON line.
// Each library is used through its documented API, the way its README shows.
//
// usage: node node-client.js asterisk-manager|asterisk-ami|yana|asterisk-ami-client PORT PINGS WARMUP

const [lib, portText, pingsText, warmupText] = process.argv.slice(2);
const port = Number(portText);
const pings = Number(pingsText || 0);
const warmup = Number(warmupText || 0);
const host = '127.0.0.1';

let events = 0;
let warmEvents = -1;
let ended = false;
let started = null;
let elapsed = 0;
const samples = [];

function finish(error) {
  process.stdout.write(
    JSON.stringify({
      client: lib,
      events,
      warm_events: warmEvents,
      ended,
      elapsed_seconds: elapsed,
      ping_us: samples.map((x) => Math.round(x * 100) / 100),
      error: error ? String(error) : null,
    }) + '\n',
    () => process.exit(0)
  );
}

// Bounded: whatever happens, stop after 5 minutes.
setTimeout(() => finish('timed out after 300 s'), 300000).unref();
process.on('uncaughtException', (e) => finish(e && e.stack ? e.stack.split('\n')[0] : e));

// marker: 'WarmupEnd', 'StreamEnd' or undefined (an ordinary event)
function onEvent(marker) {
  if (ended) return;
  if (marker === 'WarmupEnd') {
    warmEvents = events;
    sendPing(-1).catch((e) => finish(e)); // the measured stream starts when the server reads it
    started = process.hrtime.bigint();
  } else if (marker === 'StreamEnd') {
    ended = true;
    elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    setImmediate(pingLoop);
  } else {
    events++;
  }
}

let sendPing = null; // (i) => Promise, resolved on the Pong

async function pingLoop() {
  try {
    for (let i = 0; i < warmup + pings; i++) {
      const t0 = process.hrtime.bigint();
      await sendPing(i);
      if (i >= warmup) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    finish(null);
  } catch (e) {
    finish(e);
  }
}

if (lib === 'asterisk-manager') {
  // new Manager(port, host, username, password, events): connects and logs in at once.
  const Manager = require('asterisk-manager');
  const ami = new Manager(port, host, 'bench', 'bench', true);
  ami.on('managerevent', (e) => onEvent(e.event === 'UserEvent' ? e.userevent : undefined));
  ami.on('error', (e) => finish(e));
  sendPing = () =>
    new Promise((resolve, reject) =>
      ami.action({ action: 'ping' }, (err, res) => {
        if (err) reject(new Error('ping error: ' + JSON.stringify(err)));
        else if (!res || res.ping !== 'Pong') reject(new Error('no Pong: ' + JSON.stringify(res)));
        else resolve();
      })
    );
} else if (lib === 'asterisk-ami') {
  // Everything (responses and events) comes as 'ami_data', keys lower-cased.
  const AsteriskAmi = require('asterisk-ami');
  const ami = new AsteriskAmi({ host, port, username: 'bench', password: 'bench', events: true });
  let pending = null;
  ami.on('ami_data', (d) => {
    if (pending && d.response !== undefined && d.actionid === pending.id) {
      const p = pending;
      pending = null;
      if (d.ping === 'Pong') p.resolve();
      else p.reject(new Error('no Pong: ' + JSON.stringify(d)));
      return;
    }
    if (d.event !== undefined) onEvent(d.event === 'UserEvent' ? d.userevent : undefined);
  });
  ami.on('ami_socket_error', (e) => finish(e));
  ami.connect(() => {});
  sendPing = (i) =>
    new Promise((resolve, reject) => {
      pending = { id: 'p' + i, resolve, reject };
      ami.send({ Action: 'Ping', ActionID: 'p' + i });
    });
} else if (lib === 'yana') {
  const AMI = require('yana');
  const ami = new AMI({ host, port, login: 'bench', password: 'bench', events: 'on' });
  ami.on('event', (e) => onEvent(e.Event === 'UserEvent' ? e.UserEvent : undefined));
  ami.on('error', (e) => finish(e));
  ami.connect(() => {});
  sendPing = () =>
    new Promise((resolve, reject) =>
      ami.send({ Action: 'Ping' }, (res) => {
        if (res && res.Ping === 'Pong') resolve();
        else reject(new Error('no Pong: ' + JSON.stringify(res)));
      })
    );
} else if (lib === 'asterisk-ami-client') {
  // new AmiClient(options).connect(user, secret, {host, port}); events as 'event', responses by promise.
  const AmiClient = require('asterisk-ami-client');
  const ami = new AmiClient({ reconnect: false, keepAlive: false, emitEventsByTypes: false });
  ami.on('event', (e) => onEvent(e.Event === 'UserEvent' ? e.UserEvent : undefined));
  ami.on('internalError', (e) => finish(e));
  ami.connect('bench', 'bench', { host, port }).catch((e) => finish(e));
  sendPing = () =>
    ami.action({ Action: 'Ping' }, true).then((res) => {
      if (!res || res.Ping !== 'Pong') throw new Error('no Pong: ' + JSON.stringify(res));
    });
} else {
  finish('unknown library ' + lib);
}
