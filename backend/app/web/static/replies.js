// One reply streamed into the conversation: its request, its events, Stop, and what the
// user is told when the server refuses it. The conversation view (chat.js) owns the page;
// a Reply only adds to it through the view's small public surface.

import { ApiError, call } from './api.js';
import { AssistantMessage, confirmUserMessage, userMessage } from './messages.js';
import { followTurn } from './turn.js';

export class Reply {
  accepted = false; // the server saved the user message and started the turn
  stopping = false;
  userMessageId = null;

  /**
   * @param {object} options
   * @param {import('./chat.js').ChatView} options.view the conversation it is shown in
   * @param {string} options.threadId
   * @param {string|null} [options.turnId] known up front when rejoining a running reply
   * @param {Element|null} [options.pending] the user's message, shown before the server saved it
   * @param {string|null} [options.replaceAfter] regenerate: the user message whose later
   *   messages the server removed
   */
  constructor({ view, threadId, turnId = null, pending = null, replaceAfter = null }) {
    this.view = view;
    this.threadId = threadId;
    this.turnId = turnId;
    this.pending = pending;
    this.replaceAfter = replaceAfter;
    this.controller = new AbortController();
    this.assistant = new AssistantMessage();
  }

  get left() {
    return this.controller.signal.aborted;
  }

  /** Follow the reply to `done` (see turn.js for reconnects); `open(signal)` makes the request. */
  follow(open) {
    const { signal } = this.controller;
    return followTurn({
      threadId: this.threadId,
      turnId: this.turnId,
      signal,
      open: () => open(signal),
      onReconnect: (attempt) => this.view.setStatus(`Connection lost; reconnecting (attempt ${attempt})…`),
      onEvent: (event, data) => this.#onEvent(event, data),
    });
  }

  /** Ask the server to stop; the stream then ends with the partial reply, marked Stopped. */
  async stop() {
    if (!this.turnId || this.stopping) return;
    this.stopping = true;
    try {
      await call('POST', `/api/threads/${this.threadId}/turns/${this.turnId}/cancel`);
    } catch (error) {
      if (error instanceof ApiError && error.routeMissing) {
        this.view.showNotice('This server cannot stop a reply yet; it will finish on its own.');
      }
      // 404 or 409: the reply had already finished; its last events are on their way.
    }
  }

  /** Stop listening (another thread was opened); the server finishes and saves the reply. */
  leave() {
    this.controller.abort();
    this.assistant.abandon();
  }

  #onEvent(event, data) {
    const { assistant, view } = this;
    if (event === 'user_message') {
      this.#started(data);
    } else if (event === 'text_delta') {
      assistant.appendText(data.delta);
    } else if (event === 'tool_call') {
      assistant.addToolCall(data);
      view.follow();
    } else if (event === 'tool_result') {
      assistant.setToolResult(data);
      view.tasks.refreshSoon();
    } else if (event === 'assistant_message') {
      assistant.finish(data);
    } else if (event === 'error') {
      const cancelled = data.code === 'cancelled';
      if (cancelled) assistant.markStopped();
      const retry = this.userMessageId && !cancelled ? () => view.regenerate(this.userMessageId) : null;
      assistant.showError(data, retry);
      view.follow();
    } else if (event === 'done' && data.status === 'cancelled') {
      assistant.markStopped();
    }
  }

  #started(message) {
    const { view } = this;
    this.accepted = true;
    this.turnId = message.metadata?.turn_id || this.turnId;
    this.userMessageId = message.id;
    view.allowStop();
    if (this.replaceAfter) {
      view.removeAfter(this.replaceAfter);
      // The server re-sends the same user message; should it ever be a copy, show only it.
      if (message.id !== this.replaceAfter) view.find(this.replaceAfter)?.remove();
    }
    if (this.pending) confirmUserMessage(this.pending, message);
    else if (!view.find(message.id)) view.list.append(userMessage(message));
    view.list.append(this.assistant.element);
    this.assistant.startStreaming();
    view.scrollToBottom();
  }
}

/** What to tell the user when a request failed (a reply refused, a thread not created). */
export function explain(error) {
  if (!(error instanceof ApiError)) {
    return 'Could not reach the server. Check your connection and try again.';
  }
  if (error.status === 409) {
    return 'A reply is already being written in this thread, perhaps in another tab. '
      + 'Wait for it to finish, then send again.';
  }
  if (error.routeMissing) return 'This server cannot do that yet.';
  if (error.status === 503) {
    const wait = error.retryAfterSeconds ? ` in ${error.retryAfterSeconds} s` : ' shortly';
    return `The server is busy: ${error.detail} Try again${wait}.`;
  }
  return error.detail || error.message;
}
