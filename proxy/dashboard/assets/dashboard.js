// Bifrost migration dashboard — plain browser JavaScript, no dependencies.
// Live data: server-sent events from /api/dashboard/events (one snapshot per
// sample, the first one with the chart's history). Actions: the admin API's
// write routes with the admin token (kept in sessionStorage) as a bearer token.
'use strict';

(function () {
  var TOKEN_KEY = 'bifrost-admin-token';
  var HISTORY_MS = 15 * 60 * 1000;
  var state = { snap: null, history: [], inputTouched: false, source: null };

  function $(id) { return document.getElementById(id); }
  function text(id, value) { var el = $(id); if (el && el.textContent !== String(value)) el.textContent = String(value); }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === 'class') e.className = attrs[k];
      else if (k === 'text') e.textContent = attrs[k];
      else if (k === 'style') e.style.cssText = attrs[k]; // CSSOM, allowed by the page's CSP (style attributes are not)
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function replaceRows(tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  // ---- formatting -------------------------------------------------------
  function fmtPercent(p) {
    if (p === null || p === undefined) return '–';
    return String(Math.round(p * 1000) / 1000);
  }
  function fmtRate(r) {
    if (r === null || r === undefined) return '–';
    var v = r * 100;
    return (v === 0 ? '0' : v < 0.1 ? v.toFixed(3) : v < 10 ? v.toFixed(2) : v.toFixed(1)) + '%';
  }
  function fmtPerSecond(v) {
    if (v === null || v === undefined) return '–';
    return v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function fmtDuration(ms) {
    var v = Math.max(0, Math.round(ms));
    if (v < 1000) return v + 'ms';
    var s = Math.round(v / 1000);
    if (s < 60) return s + 's';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h' + String(m % 60).padStart(2, '0') + 'm';
  }
  function share(part, total) { return total > 0 ? Math.round((part / total) * 1000) / 10 : 0; }

  // ---- messages ----------------------------------------------------------
  function say(message, isError) {
    var m = $('messages');
    m.textContent = message;
    m.classList.toggle('error', !!isError);
  }

  // ---- token -------------------------------------------------------------
  function getToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  function setToken(t) {
    try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage disabled */ }
    renderToken();
  }
  function renderToken() {
    var has = !!getToken();
    text('token-state', has ? 'Admin token set (this tab)' : 'No admin token');
    text('token-button', has ? 'Change admin token' : 'Enter admin token');
  }
  function askToken() {
    return new Promise(function (resolve) {
      var d = $('token-dialog');
      $('token-input').value = '';
      d.returnValue = '';
      d.addEventListener('close', function onClose() {
        d.removeEventListener('close', onClose);
        if (d.returnValue === 'save' && $('token-input').value.trim()) setToken($('token-input').value.trim());
        else if (d.returnValue === 'forget') setToken('');
        resolve(getToken());
      });
      d.showModal();
      $('token-input').focus();
    });
  }
  async function needToken() {
    var t = getToken();
    if (t) return t;
    t = await askToken();
    if (!t) throw new Error('an admin token is needed for this action');
    return t;
  }

  // ---- admin API calls ---------------------------------------------------
  async function call(method, path, body) {
    var token = await needToken();
    var headers = { authorization: 'Bearer ' + token };
    if (body !== undefined) headers['content-type'] = 'application/json';
    var res = await fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) });
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (res.status === 401) {
      setToken('');
      throw new Error('the admin token was refused (401): enter the shim\'s BIFROST_ADMIN_TOKEN');
    }
    if (!res.ok) {
      var err = new Error((data && data.error && data.error.message) || (method + ' ' + path + ' failed: ' + res.status));
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function confirmAction(title, message, warning, okLabel) {
    return new Promise(function (resolve) {
      var d = $('confirm-dialog');
      text('confirm-title', title);
      text('confirm-text', message);
      var w = $('confirm-warning');
      w.hidden = !warning;
      w.textContent = warning || '';
      text('confirm-ok', okLabel);
      d.returnValue = '';
      d.addEventListener('close', function onClose() {
        d.removeEventListener('close', onClose);
        resolve(d.returnValue === 'confirm');
      });
      d.showModal();
      $('confirm-cancel').focus();
    });
  }

  function rampRunning() {
    var r = state.snap && state.snap.ramp;
    return !!(r && r.phase === 'running');
  }

  async function refreshNow() {
    try {
      var res = await fetch('/api/dashboard', { headers: { accept: 'application/json' } });
      if (res.ok) apply(await res.json());
    } catch (e) { /* the stream will catch up */ }
  }

  async function setRollout(ev) {
    ev.preventDefault();
    var raw = $('rollout-input').value.trim();
    var percent = Number(raw);
    if (raw === '' || !isFinite(percent) || percent < 0 || percent > 100) {
      say('Rollout percent must be a number from 0 to 100.', true);
      $('rollout-input').focus();
      return;
    }
    var bucketBy = $('rollout-bucket-by').value;
    try {
      await needToken();
      var res = await fetch('/api/rollout/preview?percent=' + encodeURIComponent(String(percent)) + '&bucketBy=' + encodeURIComponent(bucketBy));
      var preview = await res.json();
      if (!res.ok) throw new Error((preview.error && preview.error.message) || 'preview failed');
      var r = state.snap && state.snap.ramp;
      var warning = r && r.phase === 'running' && !r.paused ? 'A ramp is running: it will set its own step again. Pause it first, or roll back.' : '';
      var ok = await confirmAction('Set rollout to ' + fmtPercent(percent) + '% (by ' + bucketBy + ')?', preview.summary, warning, 'Set ' + fmtPercent(percent) + '%');
      if (!ok) { say('Rollout change cancelled.'); return; }
      var after = await call('PUT', '/api/rollout', { percent: percent, bucketBy: bucketBy });
      state.inputTouched = false;
      say('Rollout set to ' + fmtPercent(after.percent) + '% of ' + (after.bucketBy === 'team' ? 'teams' : 'users') + ' on Bifrost.');
      refreshNow();
    } catch (e) {
      say(e.message, true);
    }
  }

  async function rollback() {
    try {
      var source = state.snap && state.snap.rollout && state.snap.rollout.source;
      if (source && source !== 'file') {
        say('Flags come from live LaunchDarkly: roll back with `bifrost rollout rollback` (LD_API_TOKEN set), or in LaunchDarkly itself. Nothing was changed.', true);
        return;
      }
      await needToken();
      var res = await fetch('/api/rollout/preview?percent=0');
      var preview = await res.json();
      var ok = await confirmAction('Roll back everyone to Sync?', 'Rollout to 0%, end any ramp, then drain. ' + (preview.summary || ''), '', 'Roll back to 0%');
      if (!ok) { say('Rollback cancelled.'); return; }
      // 1. Stop the ramp: recorded as rolling back to 0%, its process stops at its next tick.
      var endedRamp = false;
      try {
        await call('POST', '/api/ramp/end');
        endedRamp = true;
      } catch (e) {
        if (e.status !== 409) throw e; // 409: no ramp in progress
      }
      // 2. 0%. The shim has applied it when the call returns. A step the ramp was writing at that very
      //    moment may still land: the shim watches for it since step 1 and writes 0% again.
      try {
        await call('PUT', '/api/rollout', { percent: 0 });
      } catch (e) {
        say('Could not write 0%: ' + e.message + (endedRamp ? ' The ramp is recorded as rolling back to 0% and writes no more steps.' : '') + ' Press Roll back again, or run `bifrost rollout rollback`.', true);
        refreshNow();
        return;
      }
      // 3. The record follows the flag; 4. then the drain moves people.
      if (endedRamp) await call('POST', '/api/ramp/finish');
      var drain = await call('POST', '/api/drain', { scope: 'changed' });
      say('Rolled back to 0%' + (endedRamp ? ', the ramp was ended' : '') + '; ' + drain.queued + ' connection(s) queued to move back at ' + drain.rate + '/s.');
      state.inputTouched = false;
      refreshNow();
    } catch (e) {
      say(e.message, true);
    }
  }

  async function steerRamp(action) {
    try {
      var r = await call('POST', '/api/ramp/' + action);
      say(r.message.charAt(0).toUpperCase() + r.message.slice(1) + '.');
      refreshNow();
    } catch (e) {
      say(e.message, true);
    }
  }

  // ---- rendering ---------------------------------------------------------
  function renderRollout(s) {
    var r = s.rollout;
    text('rollout-percent', fmtPercent(r.percent));
    text('rollout-bucket', r.bucketBy || '–');
    var fs = r.flagSource;
    text('rollout-source', (r.source === 'file' ? 'flags file' : 'LaunchDarkly') +
      (fs && !fs.ready ? ' — NOT LOADED (' + fs.state + (fs.error ? ': ' + fs.error : '') + '): every user goes to Sync' : ''));
    text('rollout-version', r.version === null ? '–' : r.version);
    text('rollout-drain', r.drain.policy + ' at ' + r.drain.rate + '/s' + (r.drain.queued ? ', ' + r.drain.queued + ' queued' : ''));
    if (!state.inputTouched && r.percent !== null) {
      $('rollout-input').value = fmtPercent(r.percent);
      $('rollout-range').value = String(Math.round(r.percent));
      if (r.bucketBy) $('rollout-bucket-by').value = r.bucketBy;
    }
  }

  function renderConnections(s) {
    var c = s.connections;
    text('conn-sync', c.sync);
    text('conn-bifrost', c.bifrost);
    text('conn-sync-pct', '(' + share(c.sync, c.total) + '%)');
    text('conn-bifrost-pct', '(' + share(c.bifrost, c.total) + '%)');
    text('conn-total', c.total);
    text('conn-ws', c.websocket);
    text('conn-polling', c.polling);
    $('split-sync').style.width = (c.total ? share(c.sync, c.total) : 0) + '%';
    $('split-bifrost').style.width = (c.total ? share(c.bifrost, c.total) : 0) + '%';
    $('split-bar').setAttribute('aria-label', 'Sync ' + share(c.sync, c.total) + '%, Bifrost ' + share(c.bifrost, c.total) + '% of ' + c.total + ' live connections');
  }

  var SVG = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function niceMax(v) {
    if (v <= 4) return 4;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var n = v / p;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
  }
  function renderChart() {
    var svg = $('chart');
    var w = Math.max(200, Math.round(svg.clientWidth || 600));
    var h = Math.max(120, Math.round(svg.clientHeight || 200));
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var pad = { l: 36, r: 8, t: 8, b: 18 };
    var pts = state.history;
    var now = pts.length ? pts[pts.length - 1].t : Date.now();
    // The last 15 minutes; while the shim has less history than that, the span it has (at least a minute).
    var span = pts.length ? Math.min(HISTORY_MS, Math.max(60000, now - pts[0].t)) : HISTORY_MS;
    var t0 = now - span;
    var max = 0;
    pts.forEach(function (p) { max = Math.max(max, p.sync, p.bifrost); });
    var top = niceMax(max);
    var x = function (t) { return pad.l + ((t - t0) / span) * (w - pad.l - pad.r); };
    var y = function (v) { return pad.t + (1 - v / top) * (h - pad.t - pad.b); };
    [0, top / 2, top].forEach(function (v) {
      svg.appendChild(svgEl('line', { class: 'grid-line', x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) }));
      var label = svgEl('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' });
      label.textContent = String(Math.round(v));
      svg.appendChild(label);
    });
    [1, 2 / 3, 1 / 3, 0].forEach(function (f) {
      var ago = span * f;
      var lx = x(now - ago);
      var label = svgEl('text', { x: Math.min(Math.max(lx, pad.l + 14), w - pad.r - 14), y: h - 4, 'text-anchor': 'middle' });
      label.textContent = f === 0 ? 'now' : '−' + (ago >= 60000 ? Math.round(ago / 6000) / 10 + 'm' : Math.round(ago / 1000) + 's');
      svg.appendChild(label);
    });
    text('chart-caption', 'Live connections on Sync and Bifrost, last ' + (span >= HISTORY_MS ? '15 minutes' : fmtDuration(span) + ' (all the history since the shim started; up to 15 minutes)'));
    ['sync', 'bifrost'].forEach(function (k) {
      if (!pts.length) return;
      var line = pts.map(function (p, i) { return (i ? 'L' : 'M') + x(Math.max(p.t, t0)).toFixed(1) + ' ' + y(p[k]).toFixed(1); }).join(' ');
      var first = x(Math.max(pts[0].t, t0)).toFixed(1);
      var last = x(pts[pts.length - 1].t).toFixed(1);
      svg.appendChild(svgEl('path', { class: 'area ' + k, d: line + ' L' + last + ' ' + y(0) + ' L' + first + ' ' + y(0) + ' Z' }));
      svg.appendChild(svgEl('path', { class: 'line ' + k, d: line }));
    });
    var latest = pts[pts.length - 1];
    var titleEl = svgEl('title', {});
    titleEl.textContent = latest ? 'Now: Sync ' + latest.sync + ', Bifrost ' + latest.bifrost + ' (peak ' + max + ' in 15 minutes)' : 'No data yet';
    svg.appendChild(titleEl);
  }

  function renderTraffic(s) {
    var d = s.decisions;
    text('decisions-rate', d.perSecond ? fmtPerSecond(d.perSecond.total) : '–');
    text('decisions-rate-sync', d.perSecond ? fmtPerSecond(d.perSecond.sync) : '–');
    text('decisions-rate-bifrost', d.perSecond ? fmtPerSecond(d.perSecond.bifrost) : '–');
    text('decisions-sync', d.sync);
    text('decisions-bifrost', d.bifrost);
    text('health-window', s.backends.windowMs ? fmtDuration(s.backends.windowMs) : '–');
    var rows = ['sync', 'bifrost'].map(function (b) {
      var h = s.backends[b];
      var errCls = h.errorRate === null ? '' : h.errorRate > 0.01 ? 'badge bad' : 'badge ok';
      return el('tr', { id: 'health-' + b }, [
        el('th', { scope: 'row', text: b === 'sync' ? 'Sync' : 'Bifrost' }),
        el('td', { class: 'num', text: String(h.upgrades) }),
        el('td', { class: 'num' }, [errCls ? el('span', { class: errCls, text: fmtRate(h.errorRate) }) : '–', h.failedUpgrades ? ' (' + h.failedUpgrades + ')' : '']),
        el('td', { class: 'num', text: String(h.proxyErrors) }),
        el('td', { class: 'num', text: fmtRate(h.fallbackRate) + (h.fallbacks ? ' (' + h.fallbacks + ')' : '') }),
      ]);
    });
    replaceRows($('health-body'), rows);
  }

  function loadBar(v) {
    var pct = Math.max(0, Math.min(1, v || 0)) * 100;
    var cls = v > 0.9 ? 'bar bad' : v > 0.7 ? 'bar warn' : 'bar';
    return el('span', { class: cls, 'aria-hidden': 'true' }, [el('span', { style: 'width:' + pct.toFixed(0) + '%' })]);
  }

  function renderNodes(s) {
    var rows = s.nodes.map(function (n) {
      var stateBadge = n.reachable === false ? el('span', { class: 'badge bad', text: 'unreachable' })
        : n.draining ? el('span', { class: 'badge warn', text: 'draining' })
        : n.reachable ? el('span', { class: 'badge ok', text: 'up' })
        : el('span', { class: 'badge muted', text: 'unknown' });
      var binding = n.binding ? n.binding + (n.dimensions && n.dimensions[n.binding] !== undefined ? ' (' + n.dimensions[n.binding] + ')' : '') : '–';
      return el('tr', { 'data-node': n.id }, [
        el('td', {}, [el('strong', { text: n.id }), el('br'), el('small', { class: 'muted', text: n.url })]),
        el('td', { class: 'num', text: String(n.connections) + (n.nodeConnections !== null ? ' / ' + n.nodeConnections : '') }),
        el('td', { class: 'num' }, n.loadFactor === null ? ['–'] : [loadBar(n.loadFactor), n.loadFactor.toFixed(3)]),
        el('td', { text: binding }),
        el('td', {}, [stateBadge]),
      ]);
    });
    if (!rows.length) rows = [el('tr', {}, [el('td', { colspan: '5', class: 'muted', text: 'No Bifrost node configured.' })])];
    replaceRows($('nodes-body'), rows);
  }

  function guardValue(g) {
    if (g.value === null || g.value === undefined) return 'not judged (' + g.events + ' events)';
    return g.guard === 'p99-latency' ? Math.round(g.value) + ' ms' : fmtRate(g.value);
  }
  function guardLimit(g) {
    if (g.limit === null || g.limit === undefined) return '–';
    return g.guard === 'p99-latency' ? g.limit + ' ms' : fmtRate(g.limit);
  }

  function renderRamp(s) {
    var box = $('ramp-summary');
    var r = s.ramp;
    var lines = [];
    var pauseBtn = $('ramp-pause');
    var resumeBtn = $('ramp-resume');
    $('ramp-progress').hidden = !r || r.phase !== 'running';
    $('ramp-guards').hidden = !r || !r.guards || !r.guards.length;
    if (!r) {
      lines.push(el('p', { class: 'muted' }, ['No ramp yet. Start one with ', el('code', { text: 'bifrost rollout ramp --steps 1,5,25,50,100 --interval 10m' }), '.']));
      if (s.rampError) lines.push(el('p', { class: 'badge bad', text: s.rampError }));
    } else {
      var n = r.steps.length;
      var i = Math.min(r.stepIndex, n - 1);
      var steps = el('p', { class: 'muted' }, r.steps.map(function (p, k) {
        var label = p + '%' + (k < n - 1 ? ' → ' : '');
        return k === i && r.phase === 'running' ? el('strong', { text: label }) : label;
      }));
      if (r.phase === 'running') {
        var status = r.paused ? el('span', { class: 'badge warn', text: 'paused' + (r.pausedBy ? ' by ' + r.pausedBy : '') }) : el('span', { class: 'badge ok', text: 'running' });
        lines.push(el('p', { id: 'ramp-state' }, [status, ' step ' + (i + 1) + '/' + n + ' (' + r.stepPercent + '%)']));
        lines.push(steps);
        lines.push(el('p', { text: fmtDuration(r.stepLeftMs) + ' left in the step · ' + fmtDuration(r.timeLeftMs) + ' left in total' }));
        lines.push(el('p', { class: r.ownerAlive ? 'muted' : 'warning', text: r.ownerAlive ? 'run by ' + r.owner : 'no live ramp process: continue it with `bifrost rollout ramp --resume`' }));
        var total = n * r.intervalMs;
        var done = Math.min(total, r.stepIndex * r.intervalMs + r.stepElapsedMs);
        $('ramp-progress-fill').style.width = (total ? (done / total) * 100 : 0).toFixed(1) + '%';
      } else {
        lines.push(el('p', { id: 'ramp-state' }, [el('span', { class: r.phase === 'completed' ? 'badge ok' : 'badge bad', text: r.phase }), ' ' + (r.outcome || '')]));
        lines.push(steps);
      }
      $('ramp-guards-caption').textContent =
        r.guardsSource === 'ramp' ? 'Guards, as the ramp measured them at ' + new Date(r.guardsAt).toLocaleTimeString() + ' (Sync as the baseline where it carried traffic)'
        : r.guardsSource === 'outcome' ? 'Guards that ended the ramp'
        : 'Guards, measured by this page since it saw the step begin (absolute limits only: no live ramp process has reported yet)';
      replaceRows($('ramp-guards-body'), (r.guards || []).map(function (g) {
        var badge = g.breached ? el('span', { class: 'badge bad', text: 'breached' }) : g.value === null ? el('span', { class: 'badge muted', text: 'waiting' }) : el('span', { class: 'badge ok', text: 'within' });
        return el('tr', { title: g.text }, [el('td', { text: g.guard }), el('td', { class: 'num', text: guardValue(g) }), el('td', { class: 'num', text: guardLimit(g) }), el('td', {}, [badge])]);
      }));
    }
    var box2 = document.createDocumentFragment();
    lines.forEach(function (l) { box2.appendChild(l); });
    while (box.firstChild) box.removeChild(box.firstChild);
    box.appendChild(box2);
    var running = r && r.phase === 'running';
    pauseBtn.disabled = !running || r.paused;
    resumeBtn.disabled = !running || !r.paused;
  }

  function renderSquads(s) {
    var b = s.squads;
    if (!b) { text('squads-note', 'loading…'); return; }
    var rows = b.squads.map(function (q) {
      var pct = q.total ? (q.done / q.total) * 100 : 0;
      var bar = el('span', { class: 'bar', role: 'img', 'aria-label': q.done + ' of ' + q.total + ' steps done' }, [el('span', { style: 'width:' + pct.toFixed(0) + '%' })]);
      var target = [q.targetDate];
      if (q.overdue) target.push(' ', el('span', { class: 'badge bad', text: 'overdue' }));
      else if (q.complete) target.push(' ', el('span', { class: 'badge ok', text: 'done' }));
      return el('tr', { 'data-squad': q.squad }, [
        el('td', {}, [el('strong', { text: q.squad }), q.title ? el('br') : null, q.title ? el('small', { class: 'muted', text: q.title }) : null]),
        el('td', { class: 'num' }, [bar, el('span', { class: 'squad-count', text: q.done + '/' + q.total })]),
        el('td', { text: q.nextStep ? q.nextStepTitle || q.nextStep : '—' }),
        el('td', {}, target),
      ]);
    });
    if (!rows.length) rows = [el('tr', {}, [el('td', { colspan: '4', class: 'muted', text: b.error ? 'Squads unavailable.' : 'No squad manifests.' })])];
    replaceRows($('squads-body'), rows);
    text('squads-note', b.error ? b.error : 'From ' + b.source + '.');
  }

  function render() {
    var s = state.snap;
    if (!s) return;
    renderRollout(s);
    renderConnections(s);
    renderChart();
    renderTraffic(s);
    renderNodes(s);
    renderRamp(s);
    renderSquads(s);
  }

  function apply(s) {
    if (s.history) state.history = s.history.slice();
    else if (s.point && (!state.history.length || state.history[state.history.length - 1].t < s.point.t)) state.history.push(s.point);
    var cutoff = (s.point ? s.point.t : Date.now()) - HISTORY_MS;
    while (state.history.length > 1 && state.history[0].t < cutoff) state.history.shift();
    state.snap = s;
    var updated = new Date(s.at);
    text('live-text', 'live · updated ' + updated.toLocaleTimeString());
    render();
  }

  function connect() {
    var live = $('live-status');
    var es = new EventSource('/api/dashboard/events');
    state.source = es;
    es.addEventListener('snapshot', function (ev) {
      live.classList.add('on');
      live.classList.remove('off');
      try { apply(JSON.parse(ev.data)); } catch (e) { say('Could not read an update: ' + e.message, true); }
    });
    es.addEventListener('error', function () {
      live.classList.remove('on');
      live.classList.add('off');
      text('live-text', 'disconnected · retrying…');
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    renderToken();
    $('token-button').addEventListener('click', function () { askToken(); });
    $('rollout-form').addEventListener('submit', setRollout);
    $('rollout-range').addEventListener('input', function () { state.inputTouched = true; $('rollout-input').value = $('rollout-range').value; });
    $('rollout-input').addEventListener('input', function () { state.inputTouched = true; var v = Number($('rollout-input').value); if (isFinite(v)) $('rollout-range').value = String(Math.round(v)); });
    $('rollout-bucket-by').addEventListener('change', function () { state.inputTouched = true; });
    $('rollback-button').addEventListener('click', rollback);
    $('ramp-pause').addEventListener('click', function () { steerRamp('pause'); });
    $('ramp-resume').addEventListener('click', function () { steerRamp('resume'); });
    var resizeTimer = 0;
    window.addEventListener('resize', function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(renderChart, 100); });
    connect();
  });
})();
