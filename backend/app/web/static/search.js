// Search in the sidebar: the caller's thread titles and messages (GET /api/search).
// While a query is shown, its results take the thread list's place; Escape or an empty box
// brings the list back. Snippets are plain text plus highlight ranges, drawn as text nodes
// and <mark> elements (never HTML).

import { call, query } from './api.js';
import { $, announce, h, timeAgo } from './dom.js';
import { UNTITLED } from './threads.js';

const PAGE_SIZE = 20;
const TYPING_PAUSE_MS = 300;
const MAX_QUERY_CHARS = 200;

export class SearchPanel {
  #query = '';
  #after = null;
  #timer = null;
  #generation = 0; // bumped on every new query, so late answers for an old one are dropped

  /**
   * @param {object} handlers
   * @param {(hit: object) => Promise<void>} handlers.onOpen a result was chosen
   */
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.form = $('#search-form');
    this.input = $('#search-input');
    this.panel = $('#search-results');
    this.list = $('#search-list');
    this.status = $('#search-status');
    this.more = $('#search-more');
    this.hideWhileSearching = [$('#thread-list'), $('#threads-empty'), $('#threads-more'), $('#thread-filter')];
    this.input.maxLength = MAX_QUERY_CHARS;
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#run(this.input.value);
    });
    this.input.addEventListener('input', () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#run(this.input.value), TYPING_PAUSE_MS);
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.input.value) {
        event.stopPropagation();
        this.clear();
      }
    });
    this.more.addEventListener('click', () => this.#load({ append: true }));
  }

  get active() {
    return !this.panel.hidden;
  }

  clear() {
    clearTimeout(this.#timer);
    this.#generation += 1;
    this.input.value = '';
    this.#query = '';
    this.#show(false);
  }

  async #run(text) {
    const q = text.trim();
    if (q === this.#query && this.active) return;
    this.#query = q;
    if (!q) {
      this.clear();
      return;
    }
    await this.#load({ append: false });
  }

  async #load({ append }) {
    const generation = append ? this.#generation : ++this.#generation;
    this.#show(true);
    this.status.textContent = 'Searching…';
    let page;
    try {
      page = await call('GET', `/api/search${query({ q: this.#query, limit: PAGE_SIZE, after: append ? this.#after : null })}`);
    } catch (error) {
      if (generation === this.#generation) this.status.textContent = `Search failed: ${error.detail || error.message}`;
      return;
    }
    if (generation !== this.#generation) return;
    this.#after = page.after;
    this.more.hidden = !page.has_more;
    const items = page.data.map((hit) => this.#item(hit));
    if (append) this.list.append(...items);
    else this.list.replaceChildren(...items);
    const count = this.list.children.length;
    this.status.textContent = count ? '' : `Nothing matches “${this.#query}”.`;
    if (!append) announce(count ? `${count}${page.has_more ? '+' : ''} results` : 'No results');
  }

  #show(searching) {
    this.panel.hidden = !searching;
    for (const element of this.hideWhileSearching) element.classList.toggle('searching', searching);
  }

  #item(hit) {
    const where = hit.kind === 'thread' ? 'Title' : hit.role === 'user' ? 'You' : 'Assistant';
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'search-hit',
          dataset: { threadId: hit.thread_id, messageId: hit.message_id ?? '' },
          onclick: () => this.onOpen(hit),
        },
        h('span', { class: 'thread-name', text: hit.thread_title || UNTITLED }),
        h('span', { class: 'search-snippet' }, ...highlighted(hit.snippet, hit.highlights)),
        h('span', { class: 'thread-time', text: `${where} · ${timeAgo(hit.created_at)}` }),
      ),
    );
  }
}

/** Text nodes and <mark>s for a snippet; ranges count code points, as the API documents. */
export function highlighted(snippet, ranges) {
  const chars = Array.from(snippet);
  const parts = [];
  let at = 0;
  for (const [start, end] of ranges) {
    if (start > at) parts.push(document.createTextNode(chars.slice(at, start).join('')));
    parts.push(h('mark', { text: chars.slice(start, end).join('') }));
    at = end;
  }
  if (at < chars.length) parts.push(document.createTextNode(chars.slice(at).join('')));
  return parts;
}
