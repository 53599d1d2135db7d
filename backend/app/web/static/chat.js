// The conversation: history (older pages load as you scroll up), the composer, and replies
// streamed in as they are generated (replies.js), with Stop and Regenerate.

import { call, query, request } from './api.js';
import { $, announce, h } from './dom.js';
import { AssistantMessage, userMessage } from './messages.js';
import { Reply, explain } from './replies.js';
import { StreamLost } from './turn.js';

const HISTORY_PAGE_SIZE = 30;
const LOAD_OLDER_WITHIN_PX = 80; // start loading older messages this close to the top
const STICK_TO_BOTTOM_WITHIN_PX = 120; // keep following the reply unless the user scrolled up
const TITLE_FROM_MESSAGE_CHARS = 60;
const SSE = { Accept: 'text/event-stream' };

export class ChatView {
  #thread = null;
  #after = null; // cursor of the oldest message shown
  #hasMore = false;
  #loadingOlder = false;
  #generation = 0; // bumped on every open(), so late answers for another thread are dropped
  #reply = null; // the reply this tab is following in the open thread
  #running = new Map(); // threadId -> turnId: replies left running when switching threads
  #stuck = true; // the view follows new content while the user has not scrolled up

  /** @param {{threads: import('./threads.js').ThreadList, tasks: import('./tasks.js').TaskPanel, config: object}} deps */
  constructor({ threads, tasks, config }) {
    this.threads = threads;
    this.tasks = tasks;
    this.scroller = $('#messages');
    this.list = $('#message-list');
    this.empty = $('#chat-empty');
    this.notice = $('#chat-notice');
    this.historyStatus = $('#history-status');
    this.olderButton = $('#history-more');
    this.input = $('#composer-input');
    this.sendButton = $('#send');
    this.stopButton = $('#stop');
    this.input.maxLength = config.max_message_chars;

    $('#composer').addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener('input', () => this.#fitInput());
    this.stopButton.addEventListener('click', () => this.stop());
    this.olderButton.addEventListener('click', () => this.#loadOlder());
    this.scroller.addEventListener('scroll', () => {
      this.#stuck = this.#nearBottom();
      if (this.scroller.scrollTop < LOAD_OLDER_WITHIN_PX) this.#loadOlder();
    });
    this.list.addEventListener('rendered', () => this.follow());
  }

  // --- History ---------------------------------------------------------------------------

  /** Show a thread (null: none yet); any reply being followed keeps running on the server. */
  async open(thread) {
    this.#leaveReply();
    const generation = ++this.#generation;
    this.#thread = thread;
    this.#after = null;
    this.#hasMore = false;
    this.list.replaceChildren();
    this.#hideNotice();
    this.olderButton.hidden = true;
    this.historyStatus.textContent = '';
    this.#setBusy(false);
    if (!thread) {
      this.empty.hidden = false;
      return;
    }
    this.empty.hidden = true;
    this.historyStatus.textContent = 'Loading messages…';
    let page;
    try {
      page = await call('GET', this.#messagesUrl(null));
    } catch (error) {
      if (generation === this.#generation) this.historyStatus.textContent = `Could not load messages: ${error.message}`;
      return;
    }
    if (generation !== this.#generation) return;
    this.historyStatus.textContent = '';
    this.list.append(...this.#render(page.data.slice().reverse()));
    this.#setPage(page);
    this.empty.hidden = page.data.length > 0;
    this.#refreshActions();
    this.scrollToBottom();
    this.#fillView();
    await this.#rejoin(thread, page.data[0]);
  }

  #messagesUrl(after) {
    const id = this.#thread.id;
    return `/api/threads/${id}/messages${query({ limit: HISTORY_PAGE_SIZE, order: 'desc', after })}`;
  }

  #setPage(page) {
    this.#after = page.after;
    this.#hasMore = page.has_more;
    this.olderButton.hidden = !page.has_more;
  }

  #render(messages) {
    return messages.map((message) => (message.role === 'user'
      ? userMessage(message)
      : AssistantMessage.fromHistory(message).element));
  }

  async #loadOlder() {
    if (!this.#thread || !this.#hasMore || this.#loadingOlder) return;
    this.#loadingOlder = true;
    const generation = this.#generation;
    this.historyStatus.textContent = 'Loading earlier messages…';
    try {
      const page = await call('GET', this.#messagesUrl(this.#after));
      if (generation !== this.#generation) return;
      // Keep what the user is looking at in place while content is added above it.
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.list.prepend(...this.#render(page.data.slice().reverse()));
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
      this.#setPage(page);
      this.historyStatus.textContent = page.has_more ? '' : 'This is the start of the conversation.';
    } catch (error) {
      this.historyStatus.textContent = `Could not load earlier messages: ${error.message}`;
      return;
    } finally {
      this.#loadingOlder = false;
    }
    this.#fillView();
  }

  /** With no scrollbar there is no scrolling up: load older pages until there is one. */
  #fillView() {
    if (this.#hasMore && this.scroller.scrollHeight <= this.scroller.clientHeight) this.#loadOlder();
  }

  /** Follow again a reply this tab left running in `thread`, unless it has finished. */
  async #rejoin(thread, newest) {
    const turnId = this.#running.get(thread.id);
    if (!turnId) return;
    this.#running.delete(thread.id);
    if (newest?.role === 'assistant' && newest.metadata?.turn_id === turnId) return;
    await this.#runTurn({
      turnId,
      open: (signal) => request('GET', `/api/threads/${thread.id}/turns/${turnId}/events`, {
        headers: { ...SSE, 'Last-Event-ID': '0' },
        signal,
      }),
    });
  }

  // --- Sending ---------------------------------------------------------------------------

  async send() {
    const text = this.input.value;
    if (!text.trim() || this.#reply) return;
    let thread = this.#thread;
    if (!thread) {
      try {
        thread = await this.threads.create(); // opened (through the sidebar) before it returns
      } catch (error) {
        this.showNotice(explain(error));
        return;
      }
    }
    this.input.value = '';
    this.#fitInput();
    const pending = userMessage({ content: text }, { pending: true });
    this.list.append(pending);
    this.empty.hidden = true;
    this.scrollToBottom();
    const untitled = !thread.title && thread.message_count === 0;
    const sent = await this.#runTurn({
      pending,
      open: (signal) => request('POST', `/api/threads/${thread.id}/messages`, {
        json: { text }, headers: SSE, signal,
      }),
      onRefused: () => {
        pending.remove();
        if (!this.input.value) this.input.value = text; // nothing typed is lost
        this.#fitInput();
      },
    });
    if (sent && untitled) this.#titleFrom(thread, text);
  }

  /** Regenerate the reply to a user message: everything after it is replaced. */
  async regenerate(userMessageId) {
    const thread = this.#thread;
    if (!thread || this.#reply) return;
    await this.#runTurn({
      replaceAfter: userMessageId,
      open: (signal) => request('POST', `/api/threads/${thread.id}/messages/${userMessageId}/retry`, {
        headers: SSE, signal,
      }),
    });
  }

  async stop() {
    const reply = this.#reply;
    if (!reply?.turnId || reply.stopping) return;
    this.stopButton.disabled = true;
    this.stopButton.textContent = 'Stopping…';
    await reply.stop();
  }

  /**
   * Stream one turn into the view. Returns true when the server accepted it.
   * `pending`: the user's message shown before the server saved it; `replaceAfter`: the
   * user message whose later messages a regenerate removes; `onRefused`: the request failed.
   */
  async #runTurn({ open, pending = null, replaceAfter = null, turnId = null, onRefused = () => {} }) {
    const thread = this.#thread;
    const reply = new Reply({ view: this, threadId: thread.id, turnId, pending, replaceAfter });
    this.#reply = reply;
    this.#setBusy(true);
    this.#hideNotice();
    try {
      const done = await reply.follow(open);
      this.setStatus('');
      announce(done.status === 'completed' ? 'Reply finished' : `Reply ${done.status}`);
      this.#afterTurn(thread);
    } catch (error) {
      if (reply.left) return reply.accepted;
      reply.assistant.abandon();
      if (error instanceof StreamLost) {
        this.setStatus('');
        this.showNotice('Lost the connection to this reply. Showing what the server saved.');
        if (this.#thread?.id === thread.id) this.open(this.#thread);
      } else if (!reply.accepted) {
        onRefused();
        this.showNotice(explain(error));
      } else {
        throw error;
      }
    } finally {
      if (this.#reply === reply) {
        this.#reply = null;
        this.#setBusy(false);
        this.#refreshActions();
      }
    }
    return reply.accepted;
  }

  async #afterTurn(thread) {
    try {
      const fresh = await call('GET', `/api/threads/${thread.id}`);
      if (this.#thread?.id === fresh.id) this.#thread = { ...this.#thread, ...fresh };
      this.threads.update(fresh, { toTop: true });
    } catch {
      // The sidebar is only a little stale; the next load corrects it.
    }
  }

  async #titleFrom(thread, text) {
    const firstLine = text.trim().split('\n')[0];
    const title = firstLine.length > TITLE_FROM_MESSAGE_CHARS
      ? `${firstLine.slice(0, TITLE_FROM_MESSAGE_CHARS - 1)}…`
      : firstLine;
    try {
      const renamed = await this.threads.rename(thread.id, title);
      if (this.#thread?.id === renamed.id) this.#thread = { ...this.#thread, title: renamed.title };
    } catch {
      // An untitled thread is still usable.
    }
  }

  /** Stop listening to the reply in the open thread; the server finishes and saves it. */
  #leaveReply() {
    const reply = this.#reply;
    if (!reply) return;
    if (reply.turnId) this.#running.set(reply.threadId, reply.turnId);
    reply.leave();
    this.#reply = null;
  }

  // --- View helpers (public ones are what a Reply uses) -----------------------------------

  find(messageId) {
    return this.list.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
  }

  removeAfter(messageId) {
    const anchor = this.find(messageId);
    if (!anchor) return;
    while (anchor.nextElementSibling) anchor.nextElementSibling.remove();
  }

  /** Regenerate on the last reply; Retry on a last user message that never got one. */
  #refreshActions() {
    for (const old of this.list.querySelectorAll('.message-action')) old.remove();
    const last = this.list.lastElementChild;
    if (!last || this.#reply || !last.dataset.messageId) return;
    if (last.dataset.role === 'assistant') {
      const question = last.previousElementSibling;
      if (question?.dataset.role !== 'user' || !question.dataset.messageId) return;
      const meta = last.querySelector('.message-meta');
      meta.append(h('button', {
        type: 'button', class: 'quiet message-action', text: 'Regenerate',
        onclick: () => this.regenerate(question.dataset.messageId),
      }));
    } else if (last.dataset.role === 'user') {
      last.append(h('div', { class: 'message-meta message-action' },
        h('span', { class: 'hint', text: 'No reply was saved for this message.' }),
        h('button', { type: 'button', class: 'quiet', text: 'Get a reply', onclick: () => this.regenerate(last.dataset.messageId) })));
    }
  }

  #setBusy(busy) {
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
    this.stopButton.disabled = true; // enabled once the turn id is known
    this.stopButton.textContent = 'Stop';
    this.list.closest('.messages').setAttribute('aria-busy', String(busy));
  }

  allowStop() {
    this.stopButton.disabled = false;
  }

  setStatus(text) {
    this.historyStatus.textContent = text;
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  #hideNotice() {
    this.notice.hidden = true;
    this.notice.textContent = '';
  }

  #fitInput() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  #nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < STICK_TO_BOTTOM_WITHIN_PX;
  }

  follow() {
    if (this.#stuck) this.scrollToBottom();
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.#stuck = true;
  }

  focus() {
    this.input.focus();
  }
}
