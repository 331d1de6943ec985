// Live updates: one websocket to /api/events, reopened with exponential
// backoff (and jitter, so a restarted server is not hit by every tab at
// once) whenever it closes, and shown by the live-status indicator.

const MIN_DELAY = 1000;
const MAX_DELAY = 30000;

export class Live {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.indicator the live-status element
   * @param {(event: any) => void} opts.onEvent
   * @param {() => void} opts.onReconnect after a reconnection (events may have been missed)
   * @param {() => Promise<boolean>} opts.beforeConnect resolves to false to give up (the session is over)
   */
  constructor({ indicator, onEvent, onReconnect, beforeConnect }) {
    this.indicator = indicator;
    this.label = /** @type {HTMLElement} */ (indicator.querySelector('.live-label'));
    this.onEvent = onEvent;
    this.onReconnect = onReconnect;
    this.beforeConnect = beforeConnect;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.attempt = 0;
    this.running = false;
    this.everOpened = false;
    this.wake = () => {
      if (this.running && !this.ws && document.visibilityState === 'visible') this.retryNow();
    };
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.everOpened = false;
    window.addEventListener('online', this.wake);
    document.addEventListener('visibilitychange', this.wake);
    this.open(false);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    window.removeEventListener('online', this.wake);
    document.removeEventListener('visibilitychange', this.wake);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'signed out');
    }
    this.show(false, 'Offline');
  }

  get connected() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  retryNow() {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.open(true);
  }

  /** @param {boolean} check renew the session first */
  async open(check) {
    if (!this.running || this.ws) return;
    this.show(false, 'Connecting…');
    // Renew the session first: a websocket handshake that fails for want of
    // a token looks like any other network failure to the browser.
    if (check && !(await this.beforeConnect())) return;
    if (!this.running || this.ws) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/events`);
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      const again = this.everOpened || this.attempt > 0;
      this.attempt = 0;
      this.everOpened = true;
      this.show(true, 'Live');
      if (again) this.onReconnect();
    });
    ws.addEventListener('message', (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (ev && typeof ev === 'object') this.onEvent(ev);
    });
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.running) this.schedule();
    });
  }

  schedule() {
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt++;
    this.show(false, 'Offline', `reconnecting in ${Math.ceil(delay / 1000)} s`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.open(true);
    }, delay);
  }

  /**
   * @param {boolean} connected
   * @param {string} text
   * @param {string} [detail]
   */
  show(connected, text, detail = '') {
    this.indicator.dataset.connected = String(connected);
    this.label.textContent = text;
    this.indicator.title = connected ? 'Live updates on' : `Live updates off${detail ? `: ${detail}` : ''}`;
  }
}
