'use strict';
/*
 * Drives the official LeanCloud JS SDK (npm leancloud-storage 4.15.2) for
 * tests/test_sdk_compat.py. Same JSON-lines protocol as ../py_driver.py:
 *
 * first line (or argv[2]) configures the SDK:
 *   {"server": "http://127.0.0.1:8000", "app_id": "...", "app_key": "...",
 *    "master_key": "...", "use_master_key": true}
 * then one command per line, one answer per line:
 *   {"op": "request_sms_code", "phone": "...", "sms_type": "voice",
 *    "template": "...", "sign": "...", "params": {...}}
 *   {"op": "verify_sms_code", "code": "123456", "phone": "..."}   (phone optional)
 *   {"op": "run_function", "name": "hello"}   (a path this server does not serve)
 * answer: {"ok": true} or {"ok": false, "code": <AV.Error code>, "error": "<rawMessage>"}
 */

const readline = require('readline');
const AV = require('leancloud-storage');

function configure(config) {
  const options = {
    appId: config.app_id,
    appKey: config.app_key,
    serverURL: config.server,
  };
  if (config.master_key) {
    options.masterKey = config.master_key;
  }
  AV.init(options);
  if (config.master_key && config.use_master_key !== false) {
    AV.Cloud.useMasterKey();
  }
}

async function run(command) {
  try {
    if (command.op === 'request_sms_code') {
      const data = Object.assign({}, command.params || {}, {
        mobilePhoneNumber: command.phone,
      });
      if (command.sms_type) data.smsType = command.sms_type;
      if (command.template != null) data.template = command.template;
      if (command.sign != null) data.sign = command.sign;
      await AV.Cloud.requestSmsCode(data);
    } else if (command.op === 'verify_sms_code') {
      if (command.phone == null) {
        await AV.Cloud.verifySmsCode(command.code);
      } else {
        await AV.Cloud.verifySmsCode(command.code, command.phone);
      }
    } else if (command.op === 'run_function') {
      await AV.Cloud.run(command.name);
    } else {
      return { ok: false, code: null, crash: 'unknown op ' + JSON.stringify(command.op) };
    }
  } catch (err) {
    if (err instanceof AV.Error) {
      return {
        ok: false,
        code: err.code,
        error: err.rawMessage !== undefined ? err.rawMessage : err.message,
        message: err.message,
      };
    }
    return { ok: false, code: null, crash: String(err && err.stack ? err.stack : err) };
  }
  return { ok: true };
}

function main() {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  let configured = false;
  let queue = Promise.resolve();

  const start = (config) => {
    configure(config);
    configured = true;
    process.stdout.write(JSON.stringify({ ok: true, ready: true }) + '\n');
  };

  if (process.argv[2]) {
    start(JSON.parse(process.argv[2]));
  }

  rl.on('line', (line) => {
    line = line.trim();
    if (!line) return;
    const message = JSON.parse(line);
    if (!configured) {
      start(message);
      return;
    }
    // One command at a time, answered in order.
    queue = queue.then(async () => {
      const result = await run(message);
      process.stdout.write(JSON.stringify(result) + '\n');
    });
  });
  rl.on('close', () => {
    queue.then(() => process.exit(0));
  });
}

main();
