// The thread sidebar: the caller's threads by recent activity, paged with "Load more".
// Threads may carry a `status` ("active" | "archived"); only then does the sidebar show the
// Active/Archived filter and the header an Archive button.

import { call, query } from './api.js';
import { $, h, timeAgo } from './dom.js';

const PAGE_SIZE = 30;
export const UNTITLED = 'New chat';

export class ThreadList {
  #threads = [];
  #after = null;
  #status = 'active';
  currentId = null;
  supportsStatus = false;

  /**
   * @param {object} handlers
   * @param {(thread: object|null) => Promise<void>} handlers.onSelect a thread was chosen
   * @param {(thread: object) => void} handlers.onUpdate a thread's data changed
   */
  constructor({ onSelect, onUpdate }) {
    this.onSelect = onSelect;
    this.onUpdate = onUpdate;
    this.list = $('#thread-list');
    this.empty = $('#threads-empty');
    this.more = $('#threads-more');
    this.filter = $('#thread-filter');
    this.more.addEventListener('click', () => this.#load({ append: true }));
    for (const button of this.filter.querySelectorAll('button')) {
      button.addEventListener('click', () => this.showStatus(button.dataset.status));
    }
  }

  get current() {
    return this.#threads.find((thread) => thread.id === this.currentId) || null;
  }

  get status() {
    return this.#status;
  }

  /** Load the first page; servers without thread status ignore the `status` parameter. */
  load() {
    return this.#load({ append: false });
  }

  async #load({ append }) {
    const page = await call(
      'GET',
      `/api/threads${query({ limit: PAGE_SIZE, after: append ? this.#after : null, status: this.#status })}`,
    );
    this.#threads = append ? [...this.#threads, ...page.data] : page.data;
    this.#after = page.after;
    this.more.hidden = !page.has_more;
    if (page.data.some((thread) => 'status' in thread)) this.supportsStatus = true;
    this.render();
  }

  async showStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    for (const button of this.filter.querySelectorAll('button')) {
      button.setAttribute('aria-pressed', String(button.dataset.status === status));
    }
    await this.load();
    await this.select(this.#threads[0]?.id ?? null);
  }

  render() {
    this.filter.hidden = !this.supportsStatus;
    this.list.replaceChildren(...this.#threads.map((thread) => this.#item(thread)));
    this.empty.hidden = this.#threads.length > 0;
    this.empty.textContent = this.#status === 'archived'
      ? 'No archived threads.'
      : 'No conversations yet. Start one with New chat, or just type a message.';
  }

  #item(thread) {
    const current = thread.id === this.currentId;
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'thread-item',
          'aria-current': current ? 'page' : null,
          dataset: { threadId: thread.id },
          onclick: () => this.select(thread.id),
        },
        h('span', { class: 'thread-name', text: thread.title || UNTITLED }),
        h('span', { class: 'thread-time', text: timeAgo(thread.last_activity_at) }),
      ),
    );
  }

  /** Make a thread current (null: none); resolves when the app has opened it. */
  select(id) {
    this.currentId = id;
    this.render();
    return this.onSelect(this.current);
  }

  /** Make a thread current even when no loaded page has it (a search result, say). */
  async open(id) {
    if (!this.#threads.some((t) => t.id === id)) {
      const thread = await call('GET', `/api/threads/${id}`);
      const at = this.#threads.findIndex((t) => t.last_activity_at < thread.last_activity_at);
      this.#threads.splice(at === -1 ? this.#threads.length : at, 0, thread);
    }
    return this.select(id);
  }

  async create() {
    const thread = await call('POST', '/api/threads', { json: {} });
    if (this.#status !== 'active') await this.showStatus('active');
    this.#threads = [thread, ...this.#threads.filter((t) => t.id !== thread.id)];
    await this.select(thread.id);
    return thread;
  }

  /** Replace a thread's data (after a rename or a reply); `toTop` when it just had activity. */
  update(thread, { toTop = false } = {}) {
    const others = this.#threads.filter((t) => t.id !== thread.id);
    const index = this.#threads.findIndex((t) => t.id === thread.id);
    if (toTop || index === -1) this.#threads = [thread, ...others];
    else this.#threads[index] = thread;
    this.render();
    this.onUpdate(thread);
  }

  /** Drop a thread from the list (deleted, or moved to the other filter) and pick the next. */
  remove(id) {
    const index = this.#threads.findIndex((t) => t.id === id);
    this.#threads = this.#threads.filter((t) => t.id !== id);
    if (this.currentId === id) {
      const next = this.#threads[Math.min(Math.max(index, 0), this.#threads.length - 1)];
      this.select(next?.id ?? null);
    } else {
      this.render();
    }
  }

  async rename(id, title) {
    const thread = await call('PATCH', `/api/threads/${id}`, { json: { title } });
    this.update(thread);
    return thread;
  }

  async setStatus(id, status) {
    await call('PATCH', `/api/threads/${id}`, { json: { status } });
    this.remove(id);
  }

  async delete(id) {
    await call('DELETE', `/api/threads/${id}`);
    this.remove(id);
  }
}
