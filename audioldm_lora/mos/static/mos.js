/*
 * audioldm-lora listening test page.
 *
 * Plain ES2017 with no modules and no network access, so the page works when opened from disk (file://) or from
 * any static host. It reads the blinded test configuration from window.MOS_TEST (test.js), derives a
 * per-listener presentation order from the listener id (the same arithmetic as audioldm_lora/mos/randomise.py,
 * so the analysis can recompute it), keeps every answer in localStorage as soon as it is given (a reload loses
 * nothing), and exports the answers as a JSON file for the listener to send back.
 */
(function () {
  "use strict";

  var ANSWER_FORMAT = "audioldm-lora-mos-answers";
  var ANSWER_VERSION = 1;
  var T = window.MOS_TEST;
  var app = document.getElementById("app");
  var STORE = T ? "audioldm-lora-mos:" + T.test_id : "";
  var state = null;
  var storageOk = true;

  // ---- helpers -------------------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function now() { return new Date().toISOString(); }

  // ---- per-listener randomisation (mirrors randomise.py bit for bit) --------------------------------------------

  function fnv1a(text) {
    var bytes = new TextEncoder().encode(text);
    var hash = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      hash ^= bytes[i];
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return hash >>> 0;
  }

  function mulberry32(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      var t = Math.imul(a ^ (a >>> 15), a | 1);
      t = ((t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t) >>> 0;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function shuffle(values, draw) {
    var out = values.slice();
    for (var i = out.length - 1; i > 0; i--) {
      var j = Math.floor(draw() * (i + 1));
      var tmp = out[i]; out[i] = out[j]; out[j] = tmp;
    }
    return out;
  }

  function makePlan(listenerId) {
    var seed = fnv1a(T.test_id + ":" + listenerId);
    var draw = mulberry32(seed);
    var plan = [];
    T.blocks.forEach(function (block) {
      shuffle(block.trials, draw).forEach(function (trial) {
        plan.push({ trial: trial.id, kind: block.kind, clips: shuffle(trial.clips, draw) });
      });
    });
    return { seed: seed, plan: plan };
  }

  function trialById(id) {
    for (var b = 0; b < T.blocks.length; b++)
      for (var t = 0; t < T.blocks[b].trials.length; t++)
        if (T.blocks[b].trials[t].id === id) return T.blocks[b].trials[t];
    return null;
  }

  // ---- storage -------------------------------------------------------------------------------------------------

  function load() {
    try {
      var raw = window.localStorage.getItem(STORE);
      if (!raw) return null;
      var saved = JSON.parse(raw);
      if (saved && saved.test_id === T.test_id && saved.version === ANSWER_VERSION && Array.isArray(saved.plan)) return saved;
    } catch (error) {
      storageOk = false;
    }
    return null;
  }

  function save() {
    state.updated_at = now();
    try {
      window.localStorage.setItem(STORE, JSON.stringify(state));
    } catch (error) {
      storageOk = false;
    }
  }

  function key() { return Array.prototype.join.call(arguments, "|"); }

  // ---- answers -------------------------------------------------------------------------------------------------

  function trialComplete(entry) {
    if (entry.kind === "ab") return state.preferences[entry.trial] !== undefined;
    return entry.clips.every(function (clip) {
      return T.scales.every(function (scale) { return state.ratings[key(entry.trial, clip, scale.id)] !== undefined; });
    });
  }

  function completedCount() { return state.plan.filter(trialComplete).length; }

  function exportDocument() {
    var ratings = [], preferences = [], plays = [];
    state.plan.forEach(function (entry) {
      entry.clips.forEach(function (clip) {
        T.scales.forEach(function (scale) {
          var value = state.ratings[key(entry.trial, clip, scale.id)];
          if (entry.kind === "mos" && value !== undefined) ratings.push({ trial: entry.trial, clip: clip, scale: scale.id, value: value });
        });
        var p = state.plays[key(entry.trial, clip)];
        if (p) plays.push({ trial: entry.trial, clip: clip, plays: p.plays, ended: !!p.ended });
      });
      if (entry.kind === "ab" && state.preferences[entry.trial] !== undefined)
        preferences.push({ trial: entry.trial, choice: state.preferences[entry.trial] });
    });
    return {
      format: ANSWER_FORMAT, version: ANSWER_VERSION, test_id: T.test_id,
      listener_id: state.listener_id, seed: state.seed,
      complete: completedCount() === state.plan.length,
      started_at: state.started_at, finished_at: state.finished_at || null, exported_at: now(),
      user_agent: navigator.userAgent,
      plan: state.plan, ratings: ratings, preferences: preferences, plays: plays
    };
  }

  function safeName(text) { return text.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 64); }

  function download() {
    var text = JSON.stringify(exportDocument(), null, 1);
    var blob = new Blob([text], { type: "application/json" });
    var link = el("a", { href: URL.createObjectURL(blob), download: "answers-" + T.test_id + "-" + safeName(state.listener_id) + ".json" });
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  // ---- views ---------------------------------------------------------------------------------------------------

  function newListenerId() {
    var bytes = new Uint8Array(4);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return "L" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function resetAll(question) {
    if (!window.confirm(question)) return;
    try { window.localStorage.removeItem(STORE); } catch (error) { storageOk = false; }
    state = null;
    showWelcome();
  }

  function showWelcome() {
    app.textContent = "";
    app.appendChild(el("h1", { text: T.title }));
    app.appendChild(el("div", { class: "instructions", id: "instructions", text: T.instructions }));
    if (!storageOk) app.appendChild(el("p", { class: "error", text: "This browser does not let the page save answers; do not reload it before you have downloaded them." }));
    var input = el("input", { type: "text", id: "listener-id", maxlength: 64, placeholder: "e.g. your initials and a number", autocomplete: "off" });
    var message = el("p", { class: "error", id: "id-error" });
    app.appendChild(el("div", { class: "row" }, [
      el("label", { for: "listener-id", text: "Listener id: " }), input,
      el("button", { class: "secondary", id: "generate-id", type: "button", text: "Generate one", onclick: function () { input.value = newListenerId(); } })
    ]));
    app.appendChild(message);
    app.appendChild(el("div", { class: "row" }, [
      el("button", { id: "start", type: "button", text: "Start", onclick: function () {
        var id = input.value.trim();
        if (!id || id.length > 64 || /[\u0000-\u001f]/.test(id)) { message.textContent = "Please enter a listener id (1 to 64 characters) or generate one."; return; }
        var made = makePlan(id);
        state = { format: ANSWER_FORMAT + "-progress", version: ANSWER_VERSION, test_id: T.test_id, listener_id: id, seed: made.seed, plan: made.plan,
                  position: 0, ratings: {}, preferences: {}, plays: {}, started_at: now(), finished_at: null };
        save();
        route();
      } })
    ]));
  }

  function progressBar() {
    var done = completedCount();
    return el("div", { class: "progress" }, [
      el("div", { id: "progress-text", text: "Page " + (state.position + 1) + " of " + state.plan.length + " \u00b7 " + done + " done" }),
      el("progress", { id: "progress", max: state.plan.length, value: done })
    ]);
  }

  function choiceGroup(name, options, current, enabled, onChange) {
    var wrap = el("div", { class: "choices" });
    options.forEach(function (option) {
      var input = el("input", { type: "radio", name: name, value: option.value, "data-value": option.value });
      input.checked = current !== undefined && String(current) === String(option.value);
      input.disabled = !enabled;
      var label = el("label", { class: input.checked ? "checked" : "" }, [input, el("span", { text: option.label })]);
      input.addEventListener("change", function () {
        Array.prototype.forEach.call(wrap.querySelectorAll("label"), function (l) { l.classList.remove("checked"); });
        label.classList.add("checked");
        onChange(option.value);
      });
      wrap.appendChild(label);
    });
    return wrap;
  }

  function showTrial() {
    var entry = state.plan[state.position];
    var config = trialById(entry.trial);
    var item = T.items[config.item];
    app.textContent = "";
    app.appendChild(progressBar());
    var prompt = el("div", { class: "prompt", id: "prompt", "data-trial": entry.trial, "data-kind": entry.kind }, [
      item.genre ? el("div", { class: "genre", text: item.genre }) : null,
      el("div", { text: item.prompt ? "\u201c" + item.prompt + "\u201d" : "Rate the clips below." })
    ]);
    app.appendChild(prompt);
    var next = el("button", { id: "next", type: "button", text: state.position + 1 === state.plan.length ? "Finish" : "Next", onclick: function () { go(state.position + 1); } });
    function refresh() {
      next.disabled = !trialComplete(entry);
      var bar = document.getElementById("progress"), text = document.getElementById("progress-text");
      var done = completedCount();
      bar.value = done;
      text.textContent = "Page " + (state.position + 1) + " of " + state.plan.length + " \u00b7 " + done + " done";
    }
    // play() returns a promise that rejects with AbortError when the clip is removed before it starts (the listener
    // moved on to the next page): that is the listener's choice, not an error; any other rejection still surfaces.
    function playQuietlyIfInterrupted(audio) {
      var started = audio.play();
      if (started && started.catch) {
        started.catch(function (error) { if (!error || error.name !== "AbortError") { throw error; } });
      }
    }
    var enablers = [];
    function played(clip) { return !T.require_play || !!state.plays[key(entry.trial, clip)]; }
    var letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    entry.clips.forEach(function (clip, index) {
      var audio = el("audio", { controls: true, preload: "auto", src: T.audio_dir + "/" + clip + ".wav" });
      var card = el("section", { class: "clip", "data-clip": clip, "data-index": index }, [
        el("h2", { text: entry.kind === "ab" ? "Clip " + letters[index] : "Clip " + (index + 1) }),
        el("div", { class: "row" }, [
          el("button", { class: "secondary play", type: "button", text: "\u25b6 Play", onclick: function () { audio.currentTime = 0; playQuietlyIfInterrupted(audio); } })
        ]),
        audio
      ]);
      var hint = el("p", { class: "hint", text: played(clip) ? "" : (entry.kind === "ab" ? "Play both clips to choose." : "Play the clip to enable rating.") });
      audio.addEventListener("play", function () {
        var record = state.plays[key(entry.trial, clip)] || { plays: 0, ended: false };
        record.plays += 1;
        state.plays[key(entry.trial, clip)] = record;
        save();
        hint.textContent = "";
        enablers.forEach(function (enable) { enable(); });
      });
      audio.addEventListener("ended", function () {
        var record = state.plays[key(entry.trial, clip)];
        if (record && !record.ended) { record.ended = true; save(); }
      });
      card.appendChild(hint);
      if (entry.kind === "mos") {
        T.scales.forEach(function (scale) {
          var name = key(entry.trial, clip, scale.id);
          var options = scale.labels.map(function (label, i) { return { value: i + 1, label: (i + 1) + " " + label }; });
          var group = choiceGroup(name, options, state.ratings[name], played(clip), function (value) {
            state.ratings[name] = Number(value);
            save();
            refresh();
          });
          enablers.push(function () {
            if (played(clip)) Array.prototype.forEach.call(group.querySelectorAll("input"), function (input) { input.disabled = false; });
          });
          card.appendChild(el("fieldset", { class: "scale", "data-scale": scale.id }, [el("legend", { text: scale.question }), group]));
        });
      }
      app.appendChild(card);
    });
    if (entry.kind === "ab") {
      var options = entry.clips.map(function (clip, index) { return { value: clip, label: "Clip " + letters[index] + " is better" }; });
      if (T.allow_no_preference) options.push({ value: "none", label: "No preference" });
      var allPlayed = function () { return entry.clips.every(played); };
      var group = choiceGroup(key(entry.trial, "preference"), options, state.preferences[entry.trial], allPlayed(), function (value) {
        state.preferences[entry.trial] = value;
        save();
        refresh();
      });
      enablers.push(function () {
        if (allPlayed()) Array.prototype.forEach.call(group.querySelectorAll("input"), function (input) { input.disabled = false; });
      });
      app.appendChild(el("fieldset", { class: "preference" }, [el("legend", { text: "Which clip do you prefer?" }), group]));
    }
    app.appendChild(el("nav", {}, [
      el("button", { class: "secondary", id: "back", type: "button", text: "Back", disabled: state.position === 0, onclick: function () { go(state.position - 1); } }),
      next
    ]));
    app.appendChild(el("p", { class: "muted footer" }, [
      "Listener " + state.listener_id + " \u00b7 answers are saved in this browser \u00b7 ",
      el("button", { class: "link", id: "start-over", type: "button", text: "start over", onclick: function () {
        resetAll("Erase all saved answers of listener " + state.listener_id + " and start again?");
      } })
    ]));
    refresh();
  }

  function showDone() {
    if (!state.finished_at) { state.finished_at = now(); save(); }
    app.textContent = "";
    app.appendChild(el("h1", { text: "Thank you!" }));
    var complete = completedCount() === state.plan.length;
    app.appendChild(el("p", { id: "done-note", text: complete
      ? "All " + state.plan.length + " pages are done. Please download your answers and send the file back."
      : "Some pages are not finished yet (" + completedCount() + " of " + state.plan.length + "); go back to finish them." }));
    app.appendChild(el("div", { class: "row" }, [
      el("button", { id: "download", type: "button", text: "Download answers", onclick: download }),
      el("button", { class: "secondary", id: "review", type: "button", text: "Back to the last page", onclick: function () { go(state.plan.length - 1); } }),
      el("button", { class: "secondary", id: "new-listener", type: "button", text: "New listener on this computer", onclick: function () {
        resetAll("Have you downloaded and sent your answers? They will be erased from this browser.");
      } })
    ]));
    app.appendChild(el("p", { class: "muted", text: "If the download does not work, copy the text below and send it instead." }));
    var area = el("textarea", { id: "answers-json", readonly: true });
    area.value = JSON.stringify(exportDocument());
    app.appendChild(area);
  }

  function go(position) {
    state.position = Math.max(0, Math.min(position, state.plan.length));
    save();
    route();
    window.scrollTo(0, 0);
  }

  function route() {
    if (!state) showWelcome();
    else if (state.position >= state.plan.length) showDone();
    else showTrial();
  }

  // ---- start ---------------------------------------------------------------------------------------------------

  if (!T || T.format !== "audioldm-lora-mos-test") {
    app.textContent = "";
    app.appendChild(el("p", { class: "error", text: "The test configuration (test.js) is missing or damaged; this page cannot run." }));
    return;
  }
  document.title = T.title;
  state = load();
  route();
  window.MOS_PAGE = { makePlan: makePlan, exportDocument: function () { return state ? exportDocument() : null; } };
})();
