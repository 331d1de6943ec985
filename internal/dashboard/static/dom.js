// Small DOM helpers: every node is built with createElement and textContent,
// never from HTML strings, so data from the API cannot become markup.

/**
 * Attributes for h and s: strings, numbers and booleans (true: present,
 * false/null/undefined: left out), on* event listeners, dataset, and testid
 * (data-testid).
 * @typedef {Record<string, unknown>} Attrs
 */

/** @typedef {Node | string | number | false | null | undefined | Child[]} Child */

/**
 * h builds an element: h('a', {href: '#/x', class: 'link', dataset: {testid: 'x'}}, 'text', child).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// The SVG namespace, read from the HTML parser so no URL is spelled out here.
export const SVG_NS = /** @type {Element} */ (document.createRange().createContextualFragment('<svg></svg>').firstChild).namespaceURI;

/**
 * s builds an SVG element.
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {SVGElementTagNameMap[K]}
 */
export function s(tag, attrs, ...children) {
  const el = /** @type {SVGElementTagNameMap[K]} */ (document.createElementNS(SVG_NS, tag));
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * @param {HTMLElement | SVGElement} el
 * @param {Attrs | null | undefined} attrs
 */
function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(/** @type {Record<string, unknown>} */ (v))) el.dataset[dk] = String(dv);
    } else if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    } else if (k === 'testid') {
      el.setAttribute('data-testid', String(v));
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

/**
 * fill replaces el's children with children (null, false and undefined left out).
 * @param {Element} el
 * @param {...Child} children
 */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * @param {Element} el
 * @param {Child[]} children
 */
function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// ---- Formatting.

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/**
 * ago says how long ago (or in how long) iso is, in words.
 * @param {string | null | undefined} iso
 */
export function ago(iso) {
  if (!iso) return 'never';
  const secs = (new Date(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(secs);
  if (abs < 45) return rtf.format(Math.round(secs), 'second');
  if (abs < 2700) return rtf.format(Math.round(secs / 60), 'minute');
  if (abs < 79200) return rtf.format(Math.round(secs / 3600), 'hour');
  return rtf.format(Math.round(secs / 86400), 'day');
}

/** @param {string} iso */
export function dateTime(iso) {
  return new Date(iso).toLocaleString(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/**
 * ms formats milliseconds: "12.5 ms", "340 ms", "12.3 s"; "–" for none.
 * @param {number | null | undefined} v
 */
export function ms(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (v >= 10000) return (v / 1000).toFixed(1) + ' s';
  if (v >= 100 || Math.abs(v - Math.round(v)) < 1e-9) return Math.round(v) + ' ms';
  return v.toFixed(1) + ' ms';
}

// shortDateTime drops the date for today's times, to keep tables narrow.
/** @param {string} iso */
export function shortDateTime(iso) {
  const d = new Date(iso);
  if (d.toDateString() === new Date().toDateString()) {
    return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * percent formats a ratio (0 to 1); "–" for none.
 * @param {number | null | undefined} ratio
 */
export function percent(ratio) {
  if (ratio === undefined || ratio === null) return '–';
  const p = ratio * 100;
  if (p === 100) return '100%';
  return (p >= 99 ? p.toFixed(2) : p.toFixed(1)) + '%';
}

/**
 * duration formats whole seconds in the largest exact unit.
 * @param {number} seconds
 */
export function duration(seconds) {
  if (seconds % 86400 === 0) return seconds / 86400 + ' d';
  if (seconds % 3600 === 0) return seconds / 3600 + ' h';
  if (seconds % 60 === 0) return seconds / 60 + ' min';
  return seconds + ' s';
}

/**
 * stateBadge shows a monitor's state: colour, a shape (CSS) and the word itself.
 * @param {string | null | undefined} state
 * @param {string} [testid]
 */
export function stateBadge(state, testid) {
  const st = state === 'up' || state === 'down' ? state : 'unknown';
  return h('span', { class: 'state', testid, dataset: { state: st } }, st);
}

/**
 * @param {HTMLElement} el a stateBadge
 * @param {string | null | undefined} state
 */
export function setState(el, state) {
  const st = state === 'up' || state === 'down' ? state : 'unknown';
  el.dataset.state = st;
  el.textContent = st;
}
