/* "Send code" without a page reload, for the bundled account pages.
 *
 * Without JavaScript the button is an ordinary submit button (name="action",
 * value="send_code") and the page posts and re-renders. With JavaScript the same
 * form data is posted with "Accept: application/json"; the server answers
 *   {"ok": true,  "message": "...", "wait": 60}
 *   {"ok": false, "errors": {"<field>": ["..."]}, "wait": 0, "captcha": {...}}
 * with every text already in the page's language. The button then counts down
 * "wait" seconds before it can be pressed again. A CAPTCHA "new image" button
 * (value="refresh_captcha") is handled the same way. No dependencies.
 */
(function () {
  "use strict";

  if (!window.fetch || !window.FormData || !document.querySelector) { return; }

  function errorBox(form, name) {
    var input = form.elements[name];
    if (input && input.id) { return document.getElementById(input.id + "_error"); }
    return form.querySelector("[data-errors-for='" + name + "']");
  }

  function describe(input, id, on) {
    var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    ids = ids.filter(function (x) { return x !== id; });
    if (on) { ids.push(id); }
    if (ids.length) { input.setAttribute("aria-describedby", ids.join(" ")); }
    else { input.removeAttribute("aria-describedby"); }
  }

  function showErrors(form, errors) {
    var boxes = form.querySelectorAll(".field-error, .form-error[data-errors-for]");
    Array.prototype.forEach.call(boxes, function (box) { box.textContent = ""; });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (input) {
      input.removeAttribute("aria-invalid");
    });
    var first = null;
    Object.keys(errors || {}).forEach(function (name) {
      var box = errorBox(form, name) || form.querySelector("[data-errors-for='__all__']");
      if (!box) { return; }
      box.textContent = errors[name].join(" ");
      var input = form.elements[name];
      if (input && input.setAttribute) {
        input.setAttribute("aria-invalid", "true");
        describe(input, box.id, true);
        first = first || input;
      }
    });
    return first;
  }

  function setCaptcha(form, captcha) {
    if (!captcha) { return; }
    var token = form.querySelector("input[name='captcha_token']");
    var image = form.querySelector("img[data-captcha-image]");
    var answer = form.querySelector("input[name='captcha_answer']");
    if (token) { token.value = captcha.token; }
    if (image) { image.src = captcha.image; }
    if (answer) { answer.value = ""; }
  }

  function countdown(button, seconds) {
    var label = button.getAttribute("data-label") || button.textContent;
    var waitLabel = button.getAttribute("data-wait-label") || "{s}";
    button.setAttribute("data-label", label);
    if (button._timer) { clearInterval(button._timer); }
    var left = Math.max(0, Math.ceil(seconds));
    function tick() {
      if (left <= 0) {
        clearInterval(button._timer);
        button._timer = null;
        button.disabled = false;
        button.textContent = label;
        return;
      }
      button.disabled = true;
      button.textContent = waitLabel.replace("{s}", String(left));
      left -= 1;
    }
    tick();
    button._timer = setInterval(tick, 1000);
  }

  function post(form, action) {
    var data = new FormData(form);
    data.set("action", action);
    return fetch(form.getAttribute("action") || window.location.href, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-Requested-With": "XMLHttpRequest" }
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, errors: { __all__: [form.getAttribute("data-failed-text") || response.statusText] } };
      });
    });
  }

  function status(form, text) {
    var box = form.querySelector("[data-send-status]");
    if (box) { box.textContent = text || ""; }
  }

  function sendCode(form, button) {
    button.disabled = true;
    status(form, "");
    post(form, "send_code").then(function (body) {
      var first = showErrors(form, body.errors);
      setCaptcha(form, body.captcha);
      status(form, body.message);
      if (body.wait) { countdown(button, body.wait); } else { button.disabled = false; }
      if (first) { first.focus(); }
      else if (body.ok) {
        var code = form.querySelector("[data-code-input]");
        if (code) { code.focus(); }
      }
    }, function () {
      button.disabled = false;
      showErrors(form, { __all__: [form.getAttribute("data-failed-text") || "Network error"] });
    });
  }

  function refreshCaptcha(form, button) {
    button.disabled = true;
    post(form, "refresh_captcha").then(function (body) {
      setCaptcha(form, body.captcha);
      button.disabled = false;
      var answer = form.querySelector("input[name='captcha_answer']");
      if (answer) { answer.focus(); }
    }, function () { button.disabled = false; });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-send-code], button[data-refresh-captcha]");
    if (!button || !button.form) { return; }
    event.preventDefault();
    if (button.hasAttribute("data-send-code")) { sendCode(button.form, button); }
    else { refreshCaptcha(button.form, button); }
  });

  // A page rendered right after a send (JavaScript on or off) starts the countdown.
  Array.prototype.forEach.call(document.querySelectorAll("button[data-send-code][data-wait]"), function (button) {
    var wait = parseInt(button.getAttribute("data-wait"), 10);
    if (wait > 0) { countdown(button, wait); }
  });
})();
