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
 *   {"op": "request_captcha", "width": 100, "height": 50}
 *       -> also "token", "url" (AV.Captcha.request)
 *   {"op": "verify_captcha", "token": "...", "code": "abcd"}
 *       -> also "validate_token" (captcha.verify on the AV.Captcha of that token)
 * phone users (AV.User keeps the current user, and sends its
 * session, between commands):
 *   {"op": "sign_up", "username", "password", "phone"}
 *   {"op": "login", "username", "password"}
 *   {"op": "login_with_sms_code", "phone", "code"}       (logInWithMobilePhoneSmsCode)
 *   {"op": "signup_or_login_with_mobile_phone", "phone", "code", "attrs"}
 *   {"op": "become", "session_token"}
 *   {"op": "logout"}
 *   {"op": "request_login_sms_code", "phone", "validate_token"}
 *   {"op": "request_mobile_phone_verify", "phone", "validate_token"}
 *   {"op": "verify_mobile_phone", "code"}                 (body null, no number)
 *   {"op": "request_password_reset_by_sms_code", "phone", "validate_token"}
 *   {"op": "reset_password_by_sms_code", "code", "password"}   (only the password)
 *   {"op": "request_change_phone_number", "phone", "ttl", "validate_token"}
 *   {"op": "change_phone_number", "phone", "code"}
 * Calls that log in answer
 * {"ok": true, "user": {objectId, sessionToken, username, mobilePhoneNumber,
 * mobilePhoneVerified}}.
 * request_sms_code also takes "validate_token" (passed as {validateToken}).
 * answer: {"ok": true} (plus the fields above) or {"ok": false, "code": <AV.Error code>, "error": "<rawMessage>"}
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

function userResult(user) {
  return {
    ok: true,
    user: {
      objectId: user.id,
      sessionToken: user.getSessionToken(),
      username: user.getUsername(),
      mobilePhoneNumber: user.getMobilePhoneNumber(),
      mobilePhoneVerified: user.get('mobilePhoneVerified'),
    },
  };
}

// The phone-user calls; null for an op that is not one.
async function runUser(command) {
  const validate = command.validate_token ? { validateToken: command.validate_token } : {};
  switch (command.op) {
    case 'sign_up': {
      const user = new AV.User();
      user.setUsername(command.username);
      user.setPassword(command.password);
      if (command.phone) user.setMobilePhoneNumber(command.phone);
      return userResult(await user.signUp());
    }
    case 'login':
      return userResult(await AV.User.logIn(command.username, command.password));
    case 'login_with_sms_code':
      return userResult(await AV.User.logInWithMobilePhoneSmsCode(command.phone, command.code));
    case 'signup_or_login_with_mobile_phone':
      return userResult(
        await AV.User.signUpOrlogInWithMobilePhone(command.phone, command.code, command.attrs || {}),
      );
    case 'become':
      return userResult(await AV.User.become(command.session_token));
    case 'logout':
      await AV.User.logOut();
      return { ok: true };
    case 'request_login_sms_code':
      await AV.User.requestLoginSmsCode(command.phone, validate);
      return { ok: true };
    case 'request_mobile_phone_verify':
      await AV.User.requestMobilePhoneVerify(command.phone, validate);
      return { ok: true };
    case 'verify_mobile_phone':
      await AV.User.verifyMobilePhone(command.code);
      return { ok: true };
    case 'request_password_reset_by_sms_code':
      await AV.User.requestPasswordResetBySmsCode(command.phone, validate);
      return { ok: true };
    case 'reset_password_by_sms_code':
      await AV.User.resetPasswordBySmsCode(command.code, command.password);
      return { ok: true };
    case 'request_change_phone_number':
      // The SDK copies options.ttl, not its ttl argument: pass both.
      await AV.User.requestChangePhoneNumber(
        command.phone, command.ttl, Object.assign({ ttl: command.ttl }, validate),
      );
      return { ok: true };
    case 'change_phone_number':
      await AV.User.changePhoneNumber(command.phone, command.code);
      return { ok: true };
    default:
      return null;
  }
}

// AV.Captcha instances by token: verify() is a method of the requested captcha.
const captchas = new Map();

async function run(command) {
  let answer = {};
  try {
    if (command.op === 'request_sms_code') {
      const data = Object.assign({}, command.params || {}, {
        mobilePhoneNumber: command.phone,
      });
      if (command.sms_type) data.smsType = command.sms_type;
      if (command.template != null) data.template = command.template;
      if (command.sign != null) data.sign = command.sign;
      if (command.validate_token != null) {
        await AV.Cloud.requestSmsCode(data, { validateToken: command.validate_token });
      } else {
        await AV.Cloud.requestSmsCode(data);
      }
    } else if (command.op === 'verify_sms_code') {
      if (command.phone == null) {
        await AV.Cloud.verifySmsCode(command.code);
      } else {
        await AV.Cloud.verifySmsCode(command.code, command.phone);
      }
    } else if (command.op === 'run_function') {
      await AV.Cloud.run(command.name);
    } else if (command.op === 'request_captcha') {
      const options = {};
      for (const name of ['width', 'height', 'size', 'ttl']) {
        if (command[name] != null) options[name] = command[name];
      }
      const captcha = await AV.Captcha.request(options);
      captchas.set(captcha.captchaToken, captcha);
      answer = { token: captcha.captchaToken, url: captcha.url };
    } else if (command.op === 'verify_captcha') {
      const captcha = captchas.get(command.token);
      if (!captcha) {
        return { ok: false, code: null, crash: 'no AV.Captcha for token ' + command.token };
      }
      answer = { validate_token: await captcha.verify(command.code) };
    } else {
      const result = await runUser(command);
      if (result === null) {
        return { ok: false, code: null, crash: 'unknown op ' + JSON.stringify(command.op) };
      }
      return result;
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
  return Object.assign({ ok: true }, answer);
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
