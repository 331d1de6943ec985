// A workflow's page: #/workflows/{id}. Its DAG as SVG, layered left to right
// by dependency depth, its nodes coloured by step state and labelled with
// it; a click on a node shows the step. The shell's websocket says when a
// step moves: the workflow is fetched again, at most twice a second.

import * as API from './api.js';
import { h, s, fill, dateTime, ms } from './dom.js';
import { errorCard, refocus, showProblem, throttle } from './ui.js';

/**
 * A workflow's step as the API returns it.
 * @typedef {object} Step
 * @property {number} index
 * @property {string} name
 * @property {string} kind
 * @property {string} state pending, enqueued, succeeded, failed or cancelled
 * @property {string} [job_state] River's state of its job while enqueued
 * @property {number[]} deps
 * @property {number} [job_id]
 * @property {number} attempts
 * @property {number} max_attempts
 * @property {string} [enqueued_at]
 * @property {string} [started_at]
 * @property {string} [finished_at]
 * @property {unknown} [output]
 * @property {string} [error]
 */

/**
 * A workflow as the API returns it.
 * @typedef {object} Workflow
 * @property {number} id
 * @property {string} kind
 * @property {string} state running, succeeded, failed, cancelled or timed_out
 * @property {string} policy
 * @property {number} steps_total
 * @property {number} steps_left
 * @property {number} steps_failed
 * @property {string} [error]
 * @property {string} created_at
 * @property {string} deadline
 * @property {string} [finished_at]
 * @property {unknown} [result]
 * @property {Step[]} [steps]
 */

// The step states in the order the legend lists them; "running" is an
// enqueued step whose job runs (River's job_state).
export const STEP_STATES = ['pending', 'enqueued', 'running', 'succeeded', 'failed', 'cancelled'];

/**
 * stepState is what a node shows: enqueued steps whose job runs are running.
 * @param {Step} st
 */
export function stepState(st) {
  if (st.state === 'enqueued' && st.job_state === 'running') return 'running';
  return STEP_STATES.includes(st.state) ? st.state : 'pending';
}

/**
 * stateChip shows a workflow's or a step's state: colour, a symbol (CSS)
 * and the word itself.
 * @param {string} state
 * @param {string} [testid]
 */
export function stateChip(state, testid) {
  return h('span', { class: 'chip', testid, dataset: { state } }, state.replace('_', ' '));
}

// Layout. A layer wider than MAX_PER_LAYER steps is drawn as one summary
// node (counts by state), and a workflow deeper than MAX_LAYERS layers keeps
// its first and last KEEP_LAYERS layers with one summary between: a
// thousand-step chord or chain draws a few dozen nodes, not a thousand.
const MAX_PER_LAYER = 50;
const MAX_LAYERS = 30;
const KEEP_LAYERS = 12;

/**
 * A node of the drawing: one step, or a summary of many.
 * @typedef {{key: string, steps: Step[], summary: boolean, label: string}} DagNode
 */

/**
 * layout places steps in columns by dependency depth (a step is one layer
 * right of its deepest dependency), collapsing what is too wide or too deep.
 * @param {Step[]} steps
 * @returns {{columns: DagNode[][], edges: [string, string][], nodeOf: Map<number, string>}}
 */
export function layout(steps) {
  const byIndex = new Map(steps.map((st) => [st.index, st]));
  // Kahn's algorithm: depth in topological order, whatever the indexes' order.
  /** @type {Map<number, number>} */
  const depth = new Map();
  /** @type {Map<number, number[]>} */
  const dependents = new Map();
  /** @type {Map<number, number>} */
  const waiting = new Map();
  for (const st of steps) {
    const deps = st.deps.filter((d) => byIndex.has(d));
    waiting.set(st.index, deps.length);
    for (const d of deps) {
      const list = dependents.get(d);
      if (list) list.push(st.index);
      else dependents.set(d, [st.index]);
    }
  }
  const queue = steps.filter((st) => waiting.get(st.index) === 0).map((st) => st.index);
  for (const i of queue) depth.set(i, 0);
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q];
    for (const j of dependents.get(i) || []) {
      depth.set(j, Math.max(depth.get(j) ?? 0, /** @type {number} */ (depth.get(i)) + 1));
      const left = /** @type {number} */ (waiting.get(j)) - 1;
      waiting.set(j, left);
      if (left === 0) queue.push(j);
    }
  }
  /** @type {Step[][]} */
  const layers = [];
  for (const st of steps) {
    // A cycle (never made by the engine) leaves its steps in layer 0.
    const d = depth.get(st.index) ?? 0;
    (layers[d] ||= []).push(st);
  }
  for (let d = 0; d < layers.length; d++) layers[d] ||= [];

  /** @type {{steps: Step[], from: number, to: number}[]} */
  let groups = layers.map((l, d) => ({ steps: l, from: d, to: d }));
  if (groups.length > MAX_LAYERS) {
    const middle = groups.slice(KEEP_LAYERS, groups.length - KEEP_LAYERS);
    groups = [
      ...groups.slice(0, KEEP_LAYERS),
      { steps: middle.flatMap((g) => g.steps), from: middle[0].from, to: middle[middle.length - 1].to },
      ...groups.slice(groups.length - KEEP_LAYERS),
    ];
  }
  /** @type {Map<number, string>} */
  const nodeOf = new Map();
  const columns = groups.map((g) => {
    if (g.steps.length > MAX_PER_LAYER || g.from !== g.to) {
      const key = `layers-${g.from}-${g.to}`;
      for (const st of g.steps) nodeOf.set(st.index, key);
      const where = g.from === g.to ? `layer ${g.from + 1}` : `layers ${g.from + 1}–${g.to + 1}`;
      return [{ key, steps: g.steps, summary: true, label: `${g.steps.length} steps, ${where}` }];
    }
    return g.steps.map((st) => {
      const key = `step-${st.index}`;
      nodeOf.set(st.index, key);
      return { key, steps: [st], summary: false, label: st.name };
    });
  });
  /** @type {Map<string, [string, string]>} */
  const edges = new Map();
  for (const st of steps) {
    const to = /** @type {string} */ (nodeOf.get(st.index));
    for (const d of st.deps) {
      const from = nodeOf.get(d);
      if (from && from !== to) edges.set(`${from}>${to}`, [from, to]);
    }
  }
  return { columns, edges: [...edges.values()], nodeOf };
}

/**
 * counts tallies steps by the state a node shows.
 * @param {Step[]} steps
 * @returns {Record<string, number>}
 */
export function counts(steps) {
  /** @type {Record<string, number>} */
  const n = {};
  for (const st of steps) {
    const k = stepState(st);
    n[k] = (n[k] || 0) + 1;
  }
  return n;
}

/**
 * summaryState is the state a summary node is coloured by: the one most in
 * need of attention among its steps.
 * @param {Record<string, number>} n
 */
function summaryState(n) {
  for (const k of ['failed', 'running', 'enqueued', 'pending', 'cancelled']) if (n[k]) return k;
  return 'succeeded';
}

const NODE_W = 176;
const NODE_H = 46;
const LINE_H = 16;
const GAP_X = 56;
const GAP_Y = 12;
const PAD = 12;

/** @param {DagNode} node */
function nodeHeight(node) {
  if (!node.summary) return NODE_H;
  return 30 + Object.keys(counts(node.steps)).length * LINE_H;
}

/**
 * @param {string} text
 * @param {number} max characters
 */
function clip(text, max) {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/**
 * @param {string | undefined} a
 * @param {string | undefined} b
 */
function took(a, b) {
  if (!a || !b) return '–';
  return ms(Date.parse(b) - Date.parse(a));
}

/**
 * @param {string | undefined} iso
 */
function when(iso) {
  return iso ? h('time', { datetime: iso }, dateTime(iso)) : '–';
}

/** @param {unknown} v */
function json(v) {
  return JSON.stringify(v, null, 2);
}

// Steps a summary's list shows; the rest are counted.
const LIST_MAX = 200;

/**
 * @param {import('./ui.js').Shell} shell
 * @param {number} id
 * @returns {import('./ui.js').View}
 */
export function workflowView({ main, state, render }, id) {
  document.title = `Workflow ${id} · Beacon`;
  const root = h('section', { class: 'detail', testid: 'workflow-detail', 'aria-busy': 'true' },
    h('p', { class: 'back' }, h('a', { href: '#/workflows' }, '← Workflows')),
    h('h1', { tabindex: -1 }, 'Loading…'));
  main.append(root);

  /** @type {Workflow | null} */
  let wf = null;
  let disposed = false;
  /** @type {string | null} the node shown in the panel */
  let selected = null;
  /** @type {number | null} a step picked from a summary's list */
  let selectedStep = null;
  /** @type {string} the drawn layout's node keys, to redraw only when it changes */
  let drawnShape = '';
  /** @type {Map<string, {g: SVGGElement, node: DagNode}>} */
  let drawn = new Map();

  const chip = stateChip('running', 'workflow-state');
  const msg = h('div', { class: 'form-error', role: 'alert', testid: 'workflow-error', tabindex: -1, hidden: true });
  const cancelBtn = h('button', { type: 'button', class: 'button danger', testid: 'workflow-cancel', hidden: true }, 'Cancel workflow');
  const facts = h('dl', { class: 'facts' });
  const legend = h('ul', { class: 'legend dag-legend', testid: 'dag-legend', 'aria-label': 'Steps by state' });
  const svg = s('svg', { class: 'dag-svg', testid: 'dag', role: 'group', 'aria-label': 'Steps and their dependencies' });
  const panel = h('section', { class: 'card step-panel', testid: 'step-panel', 'aria-live': 'polite', 'aria-labelledby': 'step-h', hidden: true });

  /** @param {Workflow} w */
  function showFacts(w) {
    /**
     * @param {string} term
     * @param {...import('./dom.js').Child} desc
     */
    const dl = (term, ...desc) => h('div', {}, h('dt', {}, term), h('dd', {}, ...desc));
    const done = w.steps_total - w.steps_left;
    fill(facts, 
      dl('Kind', w.kind),
      dl('Steps', `${done} of ${w.steps_total} ended${w.steps_failed ? `, ${w.steps_failed} failed` : ''}`),
      dl('Policy', w.policy === 'continue' ? 'continue after a failure' : 'fail fast'),
      dl('Started', when(w.created_at)),
      w.finished_at ? dl('Ended', when(w.finished_at)) : dl('Deadline', when(w.deadline)),
      w.finished_at ? dl('Took', took(w.created_at, w.finished_at)) : null,
      w.error ? h('div', { class: 'span-all' }, h('dt', {}, 'Error'), h('dd', { testid: 'workflow-error-text' }, w.error)) : null,
      w.result !== undefined && w.result !== null
        ? h('div', { class: 'span-all' }, h('dt', {}, 'Result'), h('dd', {}, h('pre', { class: 'output', testid: 'workflow-result' }, clip(json(w.result), 4000))))
        : null);
  }

  /** @param {Step[]} steps */
  function showLegend(steps) {
    const n = counts(steps);
    legend.replaceChildren(...STEP_STATES.map((k) =>
      h('li', { class: 'key dag-key', dataset: { state: k }, testid: `legend-${k}` }, `${k} ${n[k] || 0}`)));
  }

  /**
   * drawNode builds a node's group: its box, name and state in words.
   * @param {DagNode} node
   * @param {number} x
   * @param {number} y
   */
  function drawNode(node, x, y) {
    const hgt = nodeHeight(node);
    const g = s('g', {
      class: 'dag-node', tabindex: 0, role: 'button', transform: `translate(${x} ${y})`,
      testid: node.summary ? 'dag-summary' : 'dag-node',
      dataset: node.summary ? { key: node.key } : { key: node.key, step: node.steps[0].index },
    });
    g.append(s('rect', { class: 'dag-box', width: NODE_W, height: hgt, rx: 6 }));
    fillNode(g, node);
    const pick = () => select(node.key, null);
    g.addEventListener('click', pick);
    g.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        pick();
      }
    });
    return g;
  }

  /**
   * fillNode writes a node's state: its texts and data-state (colour).
   * @param {SVGGElement} g
   * @param {DagNode} node
   */
  function fillNode(g, node) {
    for (const t of g.querySelectorAll('text, title')) t.remove();
    const title = s('title');
    if (node.summary) {
      const n = counts(node.steps);
      const st = summaryState(n);
      g.dataset.state = st;
      const lines = STEP_STATES.filter((k) => n[k]).map((k) => `${n[k]} ${k}`);
      g.append(s('text', { class: 'dag-name', x: 10, y: 19 }, clip(node.label, 24)),
        ...lines.map((l, i) => s('text', { class: 'dag-count', x: 10, y: 37 + i * LINE_H }, l)));
      title.textContent = `${node.label}: ${lines.join(', ')}`;
      g.setAttribute('aria-label', title.textContent);
    } else {
      const st = node.steps[0];
      const k = stepState(st);
      g.dataset.state = k;
      const tries = st.attempts > 1 ? ` · try ${st.attempts}/${st.max_attempts}` : '';
      g.append(s('text', { class: 'dag-name', x: 10, y: 19 }, clip(st.name, 22)),
        s('text', { class: 'dag-state', x: 10, y: 37 }, `${k}${tries}`));
      title.textContent = `${st.name}: ${k}${tries}`;
      g.setAttribute('aria-label', `Step ${st.name}, ${k}${tries}`);
    }
    g.prepend(title);
    g.classList.toggle('selected', selected === node.key);
    g.setAttribute('aria-pressed', String(selected === node.key));
  }

  /** @param {Step[]} steps */
  function drawDag(steps) {
    const { columns, edges } = layout(steps);
    // A summary's height follows its number of states.
    const shape = columns.map((c) => c.map((n) => `${n.key}:${nodeHeight(n)}`).join(',')).join('|');
    if (shape === drawnShape) {
      // Same nodes: refresh their states in place (focus stays put).
      for (const col of columns) {
        for (const node of col) {
          const d = drawn.get(node.key);
          if (d) {
            d.node = node;
            fillNode(d.g, node);
          }
        }
      }
      return;
    }
    drawnShape = shape;
    drawn = new Map();
    /** @type {Map<string, {x: number, y: number, hgt: number}>} */
    const pos = new Map();
    const colHeights = columns.map((c) => c.reduce((sum, n) => sum + nodeHeight(n), 0) + GAP_Y * Math.max(0, c.length - 1));
    const height = Math.max(NODE_H, ...colHeights) + 2 * PAD;
    const width = columns.length * (NODE_W + GAP_X) - GAP_X + 2 * PAD;
    columns.forEach((col, c) => {
      let y = PAD + (height - 2 * PAD - colHeights[c]) / 2;
      for (const node of col) {
        const hgt = nodeHeight(node);
        pos.set(node.key, { x: PAD + c * (NODE_W + GAP_X), y, hgt });
        y += hgt + GAP_Y;
      }
    });
    const edgeGroup = s('g', { class: 'dag-edges', 'aria-hidden': 'true' });
    for (const [from, to] of edges) {
      const a = /** @type {{x: number, y: number, hgt: number}} */ (pos.get(from));
      const b = /** @type {{x: number, y: number, hgt: number}} */ (pos.get(to));
      const x1 = a.x + NODE_W;
      const y1 = a.y + a.hgt / 2;
      const x2 = b.x;
      const y2 = b.y + b.hgt / 2;
      const mx = (x1 + x2) / 2;
      edgeGroup.append(s('path', { class: 'dag-edge', 'marker-end': 'url(#dag-arrow)', d: `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2 - 4} ${y2}` }));
    }
    const nodes = s('g', { class: 'dag-nodes' });
    for (const col of columns) {
      for (const node of col) {
        const p = /** @type {{x: number, y: number}} */ (pos.get(node.key));
        const g = drawNode(node, p.x, p.y);
        drawn.set(node.key, { g, node });
        nodes.append(g);
      }
    }
    svg.setAttribute('width', String(width));
    svg.setAttribute('height', String(height));
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.replaceChildren(
      s('defs', {}, s('marker', { id: 'dag-arrow', viewBox: '0 0 8 8', refX: 4, refY: 4, markerWidth: 8, markerHeight: 8, orient: 'auto' },
        s('path', { d: 'M0 0L8 4L0 8z', class: 'dag-arrow' }))),
      edgeGroup, nodes);
  }

  /** @param {Step} st */
  function stepDetails(st) {
    const k = stepState(st);
    /**
     * @param {string} term
     * @param {...import('./dom.js').Child} desc
     */
    const dl = (term, ...desc) => h('div', {}, h('dt', {}, term), h('dd', {}, ...desc));
    const names = st.deps.map((d) => wf?.steps?.find((x) => x.index === d)?.name || `#${d}`);
    return [
      h('div', { class: 'card-head' }, h('h2', { id: 'step-h' }, `Step ${st.name}`), stateChip(k, 'step-state')),
      h('dl', { class: 'facts' },
        dl('Kind', st.kind),
        dl('Step', `#${st.index}`),
        dl('Attempts', `${st.attempts} of ${st.max_attempts}`),
        st.job_state ? dl('Job', st.job_state) : null,
        dl('Enqueued', when(st.enqueued_at)),
        dl('Started', when(st.started_at)),
        dl('Ended', when(st.finished_at)),
        dl('Ran for', took(st.started_at, st.finished_at)),
        h('div', { class: 'span-all' }, h('dt', {}, 'Depends on'), h('dd', {}, names.length ? names.join(', ') : 'nothing')),
        st.job_id && state.user?.role === 'admin'
          ? dl('River job', h('a', { href: `/riverui/jobs/${st.job_id}` }, `#${st.job_id}`))
          : null),
      st.error ? h('div', {}, h('h3', {}, 'Error'), h('pre', { class: 'output err', testid: 'step-error' }, st.error)) : null,
      st.output !== undefined && st.output !== null
        ? h('div', {}, h('h3', {}, 'Output'), h('pre', { class: 'output', testid: 'step-output' }, clip(json(st.output), 4000)))
        : null,
    ];
  }

  /** @param {DagNode} node */
  function summaryDetails(node) {
    const n = counts(node.steps);
    // Those needing attention first.
    const order = ['failed', 'running', 'enqueued', 'cancelled', 'pending', 'succeeded'];
    const list = [...node.steps].sort((a, b) => order.indexOf(stepState(a)) - order.indexOf(stepState(b)) || a.index - b.index);
    return [
      h('div', { class: 'card-head' }, h('h2', { id: 'step-h' }, node.label)),
      h('p', {}, STEP_STATES.filter((k) => n[k]).map((k) => `${n[k]} ${k}`).join(', ')),
      h('ul', { class: 'step-list', testid: 'summary-steps' },
        list.slice(0, LIST_MAX).map((st) => h('li', {},
          h('button', { type: 'button', class: 'linkish', onclick: () => select(node.key, st.index) }, st.name),
          ' ', stateChip(stepState(st))))),
      list.length > LIST_MAX ? h('p', { class: 'muted' }, `and ${list.length - LIST_MAX} more`) : null,
    ];
  }

  /**
   * select shows a node (a step of a summary when step is set) in the panel.
   * @param {string | null} key
   * @param {number | null} step
   */
  function select(key, step) {
    selected = key;
    selectedStep = step;
    for (const [k, d] of drawn) {
      d.g.classList.toggle('selected', k === key);
      d.g.setAttribute('aria-pressed', String(k === key));
    }
    showPanel();
  }

  function showPanel() {
    const d = selected ? drawn.get(selected) : undefined;
    if (!d) {
      panel.hidden = true;
      return;
    }
    const st = selectedStep !== null ? d.node.steps.find((x) => x.index === selectedStep) : undefined;
    if (st) {
      fill(panel, h('p', { class: 'back' },
        h('button', { type: 'button', class: 'linkish', onclick: () => select(selected, null) }, `← ${d.node.label}`)), ...stepDetails(st));
    } else if (d.node.summary) {
      fill(panel, ...summaryDetails(d.node));
    } else {
      fill(panel, ...stepDetails(d.node.steps[0]));
    }
    panel.hidden = false;
  }

  /** @param {Workflow} w */
  function show(w) {
    const first = wf === null;
    wf = w;
    document.title = `Workflow ${w.id} (${w.kind}) · Beacon`;
    chip.dataset.state = w.state;
    chip.textContent = w.state.replace('_', ' ');
    root.dataset.state = w.state;
    cancelBtn.hidden = w.state !== 'running';
    showFacts(w);
    const steps = w.steps || [];
    showLegend(steps);
    drawDag(steps);
    if (first) {
      root.replaceChildren(
        h('p', { class: 'back' }, h('a', { href: '#/workflows' }, '← Workflows')),
        h('div', { class: 'page-head' },
          h('div', { class: 'title-line' }, h('h1', { tabindex: -1 }, `Workflow ${w.id}`), chip),
          h('div', { class: 'actions' }, cancelBtn)),
        msg,
        facts,
        h('section', { class: 'card', 'aria-labelledby': 'dag-h' },
          h('div', { class: 'card-head' }, h('h2', { id: 'dag-h' }, 'Steps'), legend),
          h('p', { class: 'hint' }, 'Left to right by dependency; select a step for its attempts, timings, output and error.'),
          h('div', { class: 'dag-wrap', tabindex: -1 }, svg)),
        panel);
      root.setAttribute('aria-busy', 'false');
      refocus(root);
    }
    showPanel();
  }

  async function load() {
    try {
      const w = await API.get(`/workflows/${id}`);
      if (disposed) return;
      show(w);
    } catch (err) {
      if (disposed || err.status === 401) return;
      if (wf) {
        showProblem(msg, err);
        return;
      }
      root.replaceChildren(errorCard(err.status === 404 ? 'Workflow not found' : 'Could not load the workflow', err,
        err.status === 404 ? null : () => render(false)));
      refocus(root);
    }
  }

  const refresh = throttle(load, 500);

  cancelBtn.addEventListener('click', async () => {
    if (!window.confirm(`Cancel workflow ${id}? Its steps not ended are cancelled.`)) return;
    cancelBtn.disabled = true;
    try {
      const { data } = await API.request('POST', `/workflows/${id}/cancel`);
      if (disposed) return;
      msg.hidden = true;
      show(data);
    } catch (err) {
      if (!disposed && err.status !== 401) {
        showProblem(msg, err);
        refresh.run();
      }
    } finally {
      cancelBtn.disabled = false;
    }
  });

  load();

  // Over MaxStepEvents (100) steps the engine sends no event per success:
  // poll such a workflow while it runs.
  const tick = setInterval(() => {
    if (wf && wf.state === 'running' && wf.steps_total > 100) refresh.run();
  }, 5000);

  return {
    dispose() {
      disposed = true;
      refresh.cancel();
      clearInterval(tick);
    },
    onReconnect: () => refresh.run(),
    poll: () => refresh.run(),
    onEvent(ev) {
      if ((ev.type === 'workflow_step' || ev.type === 'workflow_finished') && ev.workflow_id === id) refresh.run();
    },
  };
}
