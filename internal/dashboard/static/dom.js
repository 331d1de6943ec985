// Small DOM helpers: every node is built with createElement and textContent,
// never from HTML strings, so data from the API cannot become markup.

// h builds an element: h('a', {href: '#/x', class: 'link', dataset: {testid: 'x'}}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// The SVG namespace, read from the HTML parser so no URL is spelled out here.
export const SVG_NS = document.createRange().createContextualFragment('<svg></svg>').firstChild.namespaceURI;

// s builds an SVG element.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    } else if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'testid') {
      el.setAttribute('data-testid', v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// ---- Formatting.

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function ago(iso) {
  if (!iso) return 'never';
  const secs = (new Date(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(secs);
  if (abs < 45) return rtf.format(Math.round(secs), 'second');
  if (abs < 2700) return rtf.format(Math.round(secs / 60), 'minute');
  if (abs < 79200) return rtf.format(Math.round(secs / 3600), 'hour');
  return rtf.format(Math.round(secs / 86400), 'day');
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function ms(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (v >= 10000) return (v / 1000).toFixed(1) + ' s';
  if (v >= 100 || Math.abs(v - Math.round(v)) < 1e-9) return Math.round(v) + ' ms';
  return v.toFixed(1) + ' ms';
}

// shortDateTime drops the date for today's times, to keep tables narrow.
export function shortDateTime(iso) {
  const d = new Date(iso);
  if (d.toDateString() === new Date().toDateString()) {
    return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function percent(ratio) {
  if (ratio === undefined || ratio === null) return '–';
  const p = ratio * 100;
  if (p === 100) return '100%';
  return (p >= 99 ? p.toFixed(2) : p.toFixed(1)) + '%';
}

export function duration(seconds) {
  if (seconds % 86400 === 0) return seconds / 86400 + ' d';
  if (seconds % 3600 === 0) return seconds / 3600 + ' h';
  if (seconds % 60 === 0) return seconds / 60 + ' min';
  return seconds + ' s';
}

// A monitor's state as a badge: colour, a shape (CSS) and the word itself.
export function stateBadge(state, testid) {
  const st = ['up', 'down'].includes(state) ? state : 'unknown';
  return h('span', { class: 'state', testid, dataset: { state: st } }, st);
}

export function setState(el, state) {
  const st = ['up', 'down'].includes(state) ? state : 'unknown';
  el.dataset.state = st;
  el.textContent = st;
}
