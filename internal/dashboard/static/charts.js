// SVG charts drawn from the stats endpoint's buckets. Each function redraws
// an existing <svg> at its container's width, so text stays readable at any
// screen size (a scaled viewBox would shrink the labels on a phone).

import { s, ms, percent } from './dom.js';

/**
 * One bucket of the stats endpoint.
 * @typedef {object} Bucket
 * @property {string} start
 * @property {number} checks
 * @property {number} successes
 * @property {number} uptime 0 to 1
 * @property {number} p50_ms
 * @property {number} p95_ms
 */

/**
 * The stats endpoint's answer.
 * @typedef {object} Stats
 * @property {number} bucket_seconds
 * @property {number} [uptime]
 * @property {number} [checks]
 * @property {Bucket[]} buckets
 */

/**
 * A recent check on a status page.
 * @typedef {{checked_at: string, ok: boolean, duration_ms: number}} RecentCheck
 */

const DAY = 86400e3;

// Below this many buckets every point gets a dot: a young monitor's first
// points show before there are enough of them for a line to read well.
const DOTS_BELOW = 16;

/**
 * @param {number} t
 * @param {number} spanMs
 */
function timeLabel(t, spanMs) {
  const d = new Date(t);
  if (spanMs <= 1.5 * DAY) return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (spanMs <= 8 * DAY) return d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric' });
  return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/**
 * @param {number} start
 * @param {number} bucketMs
 */
function bucketLabel(start, bucketMs) {
  const a = new Date(start);
  const b = new Date(start + bucketMs);
  const day = a.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  const hm = (/** @type {Date} */ d) => d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return `${day} ${hm(a)}–${hm(b)}`;
}

/**
 * niceStep rounds a raw step to 1, 2 or 5 times a power of ten.
 * @param {number} raw
 */
function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** @param {SVGSVGElement} svg */
function widthOf(svg) {
  const w = svg.parentElement?.clientWidth || 600;
  return Math.max(260, Math.floor(w));
}

/**
 * @param {SVGSVGElement} svg
 * @param {number} w
 * @param {number} hgt
 * @param {string} label
 */
function frame(svg, w, hgt, label) {
  svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(hgt));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.replaceChildren(s('title', {}, label));
}

/**
 * @param {SVGSVGElement} svg
 * @param {(t: number) => number} scaleX
 * @param {number} from
 * @param {number} to
 * @param {number} y
 * @param {number} w
 */
function xAxis(svg, scaleX, from, to, y, w) {
  const span = to - from;
  const n = w < 480 ? 3 : 5;
  for (let i = 0; i < n; i++) {
    const t = from + (span * i) / (n - 1);
    const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
    svg.append(s('text', { x: scaleX(t).toFixed(1), y, class: 'axis-label', 'text-anchor': anchor }, timeLabel(t, span)));
  }
}

/**
 * latencyChart draws p50 and p95 lines over [from, to). A gap of more than
 * one bucket without checks breaks the line rather than bridging it; a
 * point without a neighbour, or any point while there are few, is a dot.
 * @param {SVGSVGElement} svg
 * @param {Stats | null} stats
 * @param {number} from
 * @param {number} to
 */
export function latencyChart(svg, stats, from, to) {
  const buckets = stats?.buckets || [];
  const bucketMs = (stats?.bucket_seconds || 60) * 1000;
  const w = widthOf(svg);
  const hgt = w < 480 ? 180 : 220;
  const m = { l: 56, r: 12, t: 12, b: 26 };
  const maxP95 = Math.max(0, ...buckets.map((b) => b.p95_ms));
  const summary = buckets.length
    ? `Latency: p50 up to ${ms(Math.max(...buckets.map((b) => b.p50_ms)))}, p95 up to ${ms(maxP95)}, in ${buckets.length} buckets`
    : 'Latency: no checks in this range';
  frame(svg, w, hgt, summary);

  const step = niceStep(Math.max(maxP95, 1) / 4);
  const yMax = Math.max(step, Math.ceil(maxP95 / step) * step);
  const x = (/** @type {number} */ t) => m.l + ((Math.min(Math.max(t, from), to) - from) / (to - from)) * (w - m.l - m.r);
  const y = (/** @type {number} */ v) => m.t + (1 - v / yMax) * (hgt - m.t - m.b);

  for (let v = 0; v <= yMax + step / 2; v += step) {
    svg.append(s('line', { x1: m.l, x2: w - m.r, y1: y(v).toFixed(1), y2: y(v).toFixed(1), class: v === 0 ? 'axis' : 'grid' }));
    svg.append(s('text', { x: m.l - 6, y: (y(v) + 4).toFixed(1), class: 'axis-label', 'text-anchor': 'end' }, ms(v)));
  }
  xAxis(svg, x, from, to, hgt - 6, w);

  // A point with no neighbour on either side would be an invisible line:
  // it gets a dot.
  const lone = (/** @type {number} */ i) => {
    const t = Date.parse(buckets[i].start);
    const near = (/** @type {number} */ j) => j >= 0 && j < buckets.length && Math.abs(Date.parse(buckets[j].start) - t) <= 1.5 * bucketMs;
    return !near(i - 1) && !near(i + 1);
  };
  const pathFor = (/** @type {'p50_ms' | 'p95_ms'} */ key) => {
    let d = '';
    let prev = null;
    for (const b of buckets) {
      const t = Date.parse(b.start);
      const px = x(t + bucketMs / 2).toFixed(1);
      const py = y(b[key]).toFixed(1);
      d += prev === null || t - prev > 1.5 * bucketMs ? `M${px} ${py}` : `L${px} ${py}`;
      prev = t;
    }
    return d;
  };
  /** @type {[key: 'p50_ms' | 'p95_ms', series: string][]} */
  const series = [['p95_ms', 'p95'], ['p50_ms', 'p50']];
  for (const [key, name] of series) {
    svg.append(s('path', { d: pathFor(key), class: `series series-${name}`, 'data-series': name }));
    buckets.forEach((b, i) => {
      if (buckets.length < DOTS_BELOW || lone(i)) {
        svg.append(s('circle', { cx: x(Date.parse(b.start) + bucketMs / 2).toFixed(1), cy: y(b[key]).toFixed(1), r: 3, class: `dot dot-${name}`, 'data-series': name }));
      }
    });
  }

  if (!buckets.length) {
    svg.append(s('text', { x: (m.l + w - m.r) / 2, y: hgt / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'No checks in this range'));
    return;
  }
  // Hover targets: one column per bucket, with the numbers as a tooltip.
  const colW = Math.max(2, ((w - m.l - m.r) * bucketMs) / (to - from));
  for (const b of buckets) {
    const t = Date.parse(b.start);
    svg.append(s('rect', {
      x: (x(t + bucketMs / 2) - colW / 2).toFixed(1), y: m.t, width: colW.toFixed(1), height: hgt - m.t - m.b, class: 'hover-col',
    }, s('title', {}, `${bucketLabel(t, bucketMs)}\np50 ${ms(b.p50_ms)} · p95 ${ms(b.p95_ms)} · ${b.checks} checks`)));
  }
}

/**
 * uptimeChart draws one bar per bucket with checks, coloured by its uptime;
 * buckets without checks leave the grey track showing.
 * @param {SVGSVGElement} svg
 * @param {Stats | null} stats
 * @param {number} from
 * @param {number} to
 */
export function uptimeChart(svg, stats, from, to) {
  const buckets = stats?.buckets || [];
  const bucketMs = (stats?.bucket_seconds || 60) * 1000;
  const w = widthOf(svg);
  const hgt = 64;
  const m = { l: 56, r: 12, t: 6, b: 24 };
  const bad = buckets.filter((b) => b.uptime < 1).length;
  const label = buckets.length
    ? `Uptime ${percent(stats?.uptime)} over the range; ${bad} of ${buckets.length} buckets had failures`
    : 'Uptime: no checks in this range';
  frame(svg, w, hgt, label);

  const x = (/** @type {number} */ t) => m.l + ((Math.min(Math.max(t, from), to) - from) / (to - from)) * (w - m.l - m.r);
  const barH = hgt - m.t - m.b;
  svg.append(s('rect', { x: m.l, y: m.t, width: w - m.l - m.r, height: barH, class: 'track', rx: 2 }));
  svg.append(s('text', { x: m.l - 6, y: m.t + barH / 2 + 4, class: 'axis-label', 'text-anchor': 'end' }, 'uptime'));
  const slot = ((w - m.l - m.r) * bucketMs) / (to - from);
  const gapPx = slot > 4 ? 1 : 0;
  for (const b of buckets) {
    const t = Date.parse(b.start);
    const x0 = x(t);
    const x1 = x(t + bucketMs);
    const cls = b.uptime >= 1 ? 'ok' : b.uptime > 0 ? 'partial' : 'bad';
    svg.append(s('rect', {
      x: x0.toFixed(1), y: m.t, width: Math.max(1, x1 - x0 - gapPx).toFixed(1), height: barH,
      class: `bar ${cls}`, 'data-bucket': b.start, 'data-uptime': b.uptime.toFixed(4),
    }, s('title', {}, `${bucketLabel(t, bucketMs)}\n${percent(b.uptime)} up (${b.successes}/${b.checks} checks)`)));
  }
  xAxis(svg, x, from, to, hgt - 6, w);
}

/**
 * recentStrip draws a status page's recent checks in a fixed number of
 * slots, newest on the right; slots without a check stay grey.
 * @param {SVGSVGElement} svg
 * @param {RecentCheck[]} checks
 * @param {number} [slots]
 */
export function recentStrip(svg, checks, slots = 50) {
  const list = [...checks].sort((a, b) => Date.parse(a.checked_at) - Date.parse(b.checked_at)).slice(-slots);
  const w = widthOf(svg);
  const hgt = 40;
  const ok = list.filter((c) => c.ok).length;
  frame(svg, w, hgt, `${ok} of ${list.length} recent checks succeeded`);
  const slot = w / slots;
  const gap = slot > 4 ? Math.min(2, slot / 4) : 0;
  const first = slots - list.length;
  for (let i = 0; i < slots; i++) {
    const c = list[i - first];
    const attrs = {
      x: (i * slot).toFixed(1), y: 0, width: Math.max(1, slot - gap).toFixed(1), height: hgt, rx: slot > 6 ? 2 : 0,
      class: c ? `bar ${c.ok ? 'ok' : 'bad'}` : 'track',
    };
    svg.append(c
      ? s('rect', attrs, s('title', {}, `${new Date(c.checked_at).toLocaleString()}: ${c.ok ? 'up' : 'down'}, ${ms(c.duration_ms)}`))
      : s('rect', attrs));
  }
}
