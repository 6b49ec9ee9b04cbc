// The breaker dashboard. Every name from the server is put in the page with textContent, never
// parsed as HTML, so a tenant named like markup is shown as text.
(function () {
  'use strict';

  // The router may be nested at /breaker or /breaker/: the API is beside the page either way.
  var base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  var PER_PAGE = 20;
  var view = {
    live: false,
    actions: false,
    dropped: 0,
    query: '',
    pages: new Map(), // provider -> page shown
    panels: new Map(), // provider -> its <section>
    retunes: new Map(), // provider -> its retune form, kept across refreshes while typed in
    rows: [], // rows shown: {row, fetched, tr}
    updated: null,
    connected: false
  };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function getJSON(path) {
    return fetch(base + path, { headers: { accept: 'application/json' }, cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
        return r.json();
      });
  }

  function say(text) {
    document.getElementById('message').textContent = text || '';
  }

  function pct(x) {
    return (100 * (x || 0)).toFixed(x > 0 && x < 0.1 ? 1 : 0) + '%';
  }

  function ago(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  // A transition that another replica's circuit made, applied here through the fleet.
  function reasonText(reason) {
    return reason === 'fleet' ? 'fleet (another replica)' : reason;
  }

  function probeText(entry) {
    var r = entry.row.retry_after_ms;
    if (r === null || r === undefined) return entry.row.state === 'half_open' ? 'probing' : '';
    var left = r - (Date.now() - entry.fetched);
    return left > 0 ? (left / 1000).toFixed(1) + ' s' : 'due';
  }

  // ---- rendering ----

  function renderStatus() {
    var s = document.getElementById('status');
    s.textContent = '';
    var mode = view.live ? (view.connected ? 'live' : 'reconnecting') : 'refreshing every 5 s';
    s.appendChild(el('span', view.live && view.connected ? 'live' : 'stale', mode));
    s.appendChild(document.createTextNode(
      ' · actions ' + (view.actions ? 'on' : 'off (read-only)') +
      (view.dropped ? ' · events dropped: ' + view.dropped : '') +
      (view.updated ? ' · updated ' + new Date(view.updated).toLocaleTimeString() : '')));
  }

  function panelFor(provider) {
    var p = view.panels.get(provider);
    if (p) return p;
    p = el('section', 'provider');
    p.dataset.provider = provider;
    view.panels.set(provider, p);
    return p;
  }

  function countBadge(cls, label, n) {
    var b = el('span', 'count ' + cls, label + ' ' + n);
    b.dataset.count = cls;
    return b;
  }

  // "provider-wide: open · probe in 12.0 s · pooled 3/4 failed, 4 tenants", as text only.
  function wideBadge(wide, fetched) {
    var text = 'provider-wide: ' + wide.state;
    var r = wide.retry_after_ms;
    if (r !== null && r !== undefined) {
      var left = r - (Date.now() - fetched);
      text += left > 0 ? ' · probe in ' + (left / 1000).toFixed(1) + ' s' : ' · probe due';
    } else if (wide.state === 'half_open') {
      text += ' · probing';
    }
    if (wide.pooled) {
      text += ' · pooled ' + wide.pooled.failures + '/' + wide.pooled.calls + ' failed, ' +
        wide.pooled.failing_tenants + (wide.pooled.failing_tenants === 1 ? ' tenant' : ' tenants');
    }
    var b = el('span', 'count wide state ' + wide.state, text);
    b.dataset.count = 'provider_wide';
    b.dataset.state = wide.state;
    b.title = 'The provider-wide circuit (tenant *): opened ' + wide.times_opened +
      ' times, rejected ' + wide.rejected + ' calls';
    return b;
  }

  function timeline(steps) {
    var td = el('td', 'timeline');
    (steps || []).slice(-5).forEach(function (s) {
      var chip = el('span', 'step ' + s.to, s.to + ' · ' + reasonText(s.reason));
      chip.title = s.from + ' → ' + s.to + ' (' + reasonText(s.reason) + ') ' + ago(s.at_ms) +
        (s.open_for_ms ? ', open for ' + (s.open_for_ms / 1000) + ' s' : '');
      td.appendChild(chip);
    });
    return td;
  }

  function actionButton(row, action, label) {
    var b = el('button', 'action', label);
    b.type = 'button';
    b.addEventListener('click', function () {
      act(row.provider, row.tenant, action);
    });
    return b;
  }

  // The settings a retune may change, in the order the form shows them.
  var RETUNE_FIELDS = [
    ['consecutive_failures', 'consecutive failures'],
    ['failure_rate', 'failure rate (0-1]'],
    ['minimum_calls', 'minimum calls'],
    ['open_for_ms', 'open for (ms)'],
    ['max_open_for_ms', 'max open for (ms)'],
    ['backoff_multiplier', 'backoff multiplier'],
    ['half_open_probes', 'half-open probes'],
    ['half_open_successes', 'half-open successes']
  ];

  // A provider's retune form: empty fields keep their value; the current ones are shown as
  // placeholders when the form is opened.
  function retuneForm(provider) {
    var form = view.retunes.get(provider);
    if (form) return form;
    form = el('details', 'retune');
    form.appendChild(el('summary', null, 'Retune ' + provider));
    var inputs = {};
    var grid = el('div', 'fields');
    RETUNE_FIELDS.forEach(function (f) {
      var label = el('label', null, f[1] + ' ');
      var input = el('input');
      input.type = 'number';
      input.step = 'any';
      input.name = f[0];
      label.appendChild(input);
      grid.appendChild(label);
      inputs[f[0]] = input;
    });
    form.appendChild(grid);
    var apply = el('button', 'action retune-apply', 'Apply to every tenant of ' + provider);
    apply.type = 'button';
    form.appendChild(apply);
    form.addEventListener('toggle', function () {
      if (!form.open) return;
      getJSON('providers/' + encodeURIComponent(provider) + '/config').then(function (c) {
        RETUNE_FIELDS.forEach(function (f) {
          var v = c.config[f[0]];
          inputs[f[0]].placeholder = v === null || v === undefined ? 'off' : String(v);
        });
      }).catch(function () {});
    });
    apply.addEventListener('click', function () {
      var body = {};
      RETUNE_FIELDS.forEach(function (f) {
        var v = inputs[f[0]].value.trim();
        if (v !== '') body[f[0]] = Number(v);
      });
      fetch(base + 'providers/' + encodeURIComponent(provider) + '/retune', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body)
      }).then(function (r) {
        return r.json().then(function (answer) {
          if (!r.ok) throw new Error(answer.error || ('HTTP ' + r.status));
          RETUNE_FIELDS.forEach(function (f) { inputs[f[0]].value = ''; });
          form.open = false;
          say('retuned ' + provider);
          soon();
        });
      }).catch(function (e) {
        say('retune ' + provider + ': ' + e.message);
      });
    });
    view.retunes.set(provider, form);
    return form;
  }

  function rowFor(row, fetched) {
    var tr = el('tr', 'circuit');
    tr.dataset.provider = row.provider;
    tr.dataset.tenant = row.tenant;
    tr.dataset.state = row.state;
    tr.appendChild(el('td', 'state ' + row.state, row.state));
    tr.appendChild(el('td', 'tenant', row.tenant));
    tr.appendChild(el('td', 'num', pct(row.failure_rate)));
    tr.appendChild(el('td', 'num', pct(row.slow_rate)));
    tr.appendChild(el('td', 'num', row.calls_in_window));
    var entry = { row: row, fetched: fetched, tr: tr, probe: el('td', 'num probe') };
    entry.probe.textContent = probeText(entry);
    tr.appendChild(entry.probe);
    tr.appendChild(el('td', 'num', row.level === null || row.level === undefined ? '' : row.level));
    var last = row.timeline && row.timeline.length ? row.timeline[row.timeline.length - 1] : null;
    tr.appendChild(el('td', 'reason', last ? reasonText(last.reason) + ' (' + ago(last.at_ms) + ')' : ''));
    tr.appendChild(timeline(row.timeline));
    if (view.actions) {
      var td = el('td', 'actions');
      td.appendChild(actionButton(row, 'force_open', 'Force open'));
      td.appendChild(actionButton(row, 'reset', 'Reset'));
      td.appendChild(actionButton(row, 'disable', 'Disable'));
      tr.appendChild(td);
    }
    view.rows.push(entry);
    return tr;
  }

  function renderPanel(counts, page, fetched) {
    var p = panelFor(counts.provider);
    // The retune form stays in the page across refreshes: what is typed in it, and the focus.
    var form = view.actions ? retuneForm(counts.provider) : null;
    Array.prototype.slice.call(p.childNodes).forEach(function (c) {
      if (c !== form) p.removeChild(c);
    });
    var h = el('h2');
    h.appendChild(el('span', 'name', counts.provider));
    // The provider-wide circuit, when the provider has one: before the tenants' counts, with
    // its switches (tenant `*`) when actions are on.
    if (counts.provider_wide) {
      h.appendChild(wideBadge(counts.provider_wide, fetched));
      if (view.actions) {
        var wide = { provider: counts.provider, tenant: '*' };
        var switches = el('span', 'wide-actions');
        switches.appendChild(actionButton(wide, 'force_open', 'Force open provider-wide'));
        switches.appendChild(actionButton(wide, 'reset', 'Reset provider-wide'));
        h.appendChild(switches);
      }
    }
    h.appendChild(countBadge('open', 'open', counts.open + counts.forced_open));
    h.appendChild(countBadge('half_open', 'half-open', counts.half_open));
    h.appendChild(countBadge('closed', 'closed', counts.closed));
    if (counts.disabled + counts.metrics_only) {
      h.appendChild(countBadge('off', 'not tripping', counts.disabled + counts.metrics_only));
    }
    p.insertBefore(h, p.firstChild);
    if (form && form.parentNode !== p) p.appendChild(form);

    var table = el('table');
    var head = el('tr');
    ['state', 'tenant', 'failures', 'slow', 'calls', 'probe in', 'backoff', 'last reason', 'timeline']
      .concat(view.actions ? ['actions'] : [])
      .forEach(function (t) { head.appendChild(el('th', null, t)); });
    var thead = el('thead');
    thead.appendChild(head);
    table.appendChild(thead);
    var tbody = el('tbody');
    page.circuits.forEach(function (row) { tbody.appendChild(rowFor(row, fetched)); });
    table.appendChild(tbody);
    p.appendChild(table);

    var pager = el('div', 'pager');
    var n = view.pages.get(counts.provider) || 0;
    var prev = el('button', null, '‹ previous');
    prev.disabled = n <= 0;
    prev.addEventListener('click', function () { view.pages.set(counts.provider, n - 1); refresh(); });
    var next = el('button', null, 'next ›');
    next.disabled = n + 1 >= page.pages;
    next.addEventListener('click', function () { view.pages.set(counts.provider, n + 1); refresh(); });
    pager.appendChild(prev);
    // Every open and half-open tenant is shown (up to the server's bound); the pages are of
    // the others.
    var tripped = page.tripped || 0;
    var sent = page.tripped_sent === undefined ? tripped : page.tripped_sent;
    pager.appendChild(el('span', null, (sent < tripped ? 'first ' + sent + ' of ' : '') +
      tripped + ' open or half-open shown · others: page ' + (page.pages ? n + 1 : 0) + ' of ' +
      page.pages + ' · ' + page.total + (view.query ? ' matching' : ' tenants')));
    pager.appendChild(next);
    p.appendChild(pager);
    return p;
  }

  // ---- data ----

  var inFlight = false;
  var again = false;
  var lastRefresh = 0;
  var timer = null;

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    lastRefresh = Date.now();
    getJSON('providers').then(function (summary) {
      view.live = summary.live;
      view.actions = summary.actions;
      view.dropped = Math.max(view.dropped, summary.dropped || 0);
      if (summary.fleet) loadFleet();
      view.fleetCircuits = !!summary.fleet_circuits;
      return Promise.all(summary.providers.map(function (counts) {
        var n = view.pages.get(counts.provider) || 0;
        var q = 'circuits?provider=' + encodeURIComponent(counts.provider) + '&page=' + n +
          '&per_page=' + PER_PAGE + (view.query ? '&q=' + encodeURIComponent(view.query) : '');
        return getJSON(q).then(function (page) { return [counts, page]; });
      }));
    }).then(function (panels) {
      var fetched = Date.now();
      var main = document.getElementById('providers');
      view.rows = [];
      var keep = new Set();
      panels.forEach(function (pair) {
        keep.add(pair[0].provider);
        main.appendChild(renderPanel(pair[0], pair[1], fetched));
      });
      view.panels.forEach(function (p, name) {
        if (!keep.has(name)) { p.remove(); view.panels.delete(name); }
      });
      if (!panels.length) {
        main.textContent = '';
        main.appendChild(el('p', 'empty', 'No circuit yet.'));
      } else {
        var empty = main.querySelector('p.empty');
        if (empty) empty.remove();
      }
      view.updated = fetched;
      if (view.fleetCircuits) loadFleetCircuits();
      document.body.dataset.rendered = String(fetched);
      renderStatus();
    }).catch(function (e) {
      say('Could not load: ' + e.message);
    }).then(function () {
      inFlight = false;
      if (again) { again = false; soon(); }
    });
  }

  // At most one refresh a second, however many transitions arrive: no polling storm.
  function soon() {
    if (timer) return;
    var wait = Math.max(150, 1000 - (Date.now() - lastRefresh));
    timer = setTimeout(function () { timer = null; refresh(); }, wait);
  }

  function loadFleet() {
    getJSON('fleet').then(function (f) {
      var box = document.getElementById('fleet');
      box.hidden = !f.attached;
      box.textContent = '';
      if (!f.attached) return;
      box.appendChild(el('strong', null, 'Fleet store: '));
      box.appendChild(el('span', f.connected ? 'state closed' : 'state open',
        f.connected ? 'connected' : 'degraded'));
      box.appendChild(document.createTextNode(
        (f.can_publish ? '' : ' · cannot publish (ACL)') + ' · shared ' + f.published +
        ' · applied ' + f.applied + ' · dropped ' + f.dropped + ' · failures ' + f.failures));
    }).catch(function () {});
  }

  // Which replica opened each open circuit shown, and which one holds its probe lease, as the
  // fleet's store says: appended to the row's reason cell.
  function loadFleetCircuits() {
    getJSON('fleet/circuits').then(function (f) {
      if (!f.available) return;
      var who = function (id) { return id === f.replica ? 'this replica' : 'replica ' + id; };
      var by = new Map();
      (f.circuits || []).forEach(function (c) { by.set(c.provider + '\u0000' + c.tenant, c); });
      view.rows.forEach(function (entry) {
        var c = by.get(entry.row.provider + '\u0000' + entry.row.tenant);
        var cell = entry.tr.querySelector('td.reason');
        var old = cell.querySelector('.fleet');
        if (old) old.remove();
        if (!c || (!c.opened_by && !c.probe_lease)) return;
        var parts = [];
        if (c.opened_by) parts.push('opened by ' + who(c.opened_by));
        if (c.probe_lease) parts.push('probe lease: ' + who(c.probe_lease));
        var span = el('span', 'fleet', ' · ' + parts.join(' · '));
        span.dataset.openedBy = c.opened_by || '';
        span.dataset.probeLease = c.probe_lease || '';
        cell.appendChild(span);
      });
    }).catch(function () {});
  }

  // A transition shows at once in its row, if shown; the lists follow within a second.
  function applyTransition(t) {
    view.rows.forEach(function (entry) {
      if (entry.row.provider === t.provider && entry.row.tenant === t.tenant) {
        entry.tr.dataset.state = t.to;
        var cell = entry.tr.querySelector('td.state');
        cell.className = 'state ' + t.to;
        cell.textContent = t.to;
        entry.tr.classList.add('flash');
      }
    });
    soon();
  }

  function act(provider, tenant, action) {
    var path = 'circuits/' + encodeURIComponent(provider) + '/' + encodeURIComponent(tenant) +
      '/' + action;
    fetch(base + path, { method: 'POST' }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
        say('');
        soon();
      });
    }).catch(function (e) {
      say(action + ' ' + provider + ' / ' + tenant + ': ' + e.message);
    });
  }

  function connect() {
    if (!window.EventSource) return;
    var source = new EventSource(base + 'events');
    source.addEventListener('hello', function (e) {
      var hello = JSON.parse(e.data);
      view.live = hello.live;
      view.connected = true;
      document.body.dataset.live = hello.live ? '1' : '0';
      if (!hello.live) source.close();
      renderStatus();
      refresh();
    });
    source.addEventListener('transition', function (e) { applyTransition(JSON.parse(e.data)); });
    source.addEventListener('action', function () { soon(); });
    source.addEventListener('dropped', function (e) {
      // Fell behind: some transitions were lost, so reload the lists.
      view.dropped += JSON.parse(e.data).dropped;
      soon();
    });
    source.onerror = function () {
      view.connected = false;
      document.body.dataset.live = '0';
      renderStatus();
    };
  }

  var searchTimer = null;
  document.getElementById('search').addEventListener('input', function (e) {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      view.query = e.target.value.trim();
      view.pages.clear();
      refresh();
    }, 250);
  });

  // Counting down to the next probe, and the fallback when there is no live feed.
  setInterval(function () {
    view.rows.forEach(function (entry) { entry.probe.textContent = probeText(entry); });
  }, 1000);
  setInterval(function () { if (!view.live) refresh(); }, 5000);

  refresh();
  connect();
})();
