// How messages look. The user's words are shown as typed (plain text); the assistant's reply
// is rendered markdown, with the tool calls it made collapsed above it (name, arguments and
// output one click away).

import { h, prettyJson } from './dom.js';
import { renderMarkdown } from './markdown.js';

const RENDER_INTERVAL_MS = 40; // re-render streamed markdown at most this often

// What a failed turn means for the user, by the error event's code.
const ERROR_TEXT = {
  model_error: 'The model answered with an error.',
  model_unavailable: 'The model could not be reached.',
  model_rate_limited: 'The model provider is rate limiting this server.',
  model_context_too_long: 'This conversation is too long for the model.',
  model_bad_request: 'The model provider refused the request.',
  model_misconfigured: "The server's model settings are wrong.",
  timeout: 'The reply took too long and was cut off.',
  memory_busy: "This conversation's memory was busy.",
  storage_unavailable: 'The server could not save the reply.',
  agent_loop: 'The assistant kept calling tools without finishing.',
  cancelled: 'The reply was stopped.',
  internal_error: 'Something went wrong on the server.',
};

// What the user can do about a failed turn.
function errorAdvice(code, retryable, retryAfter) {
  if (retryable && retryAfter) return `This is temporary: try again in ${retryAfter} s.`;
  if (retryable) return 'This is usually temporary: try again in a moment.';
  if (code === 'model_misconfigured') return 'Retrying will not help until an operator fixes it.';
  if (code === 'model_context_too_long') return 'Start a new chat to go on.';
  return 'Try again, or rephrase your message.';
}

export function userMessage(message, { pending = false } = {}) {
  return h(
    'article',
    {
      class: pending ? 'message user pending' : 'message user',
      'aria-label': 'You',
      dataset: message.id ? { role: 'user', messageId: message.id } : { role: 'user' },
    },
    h('div', { class: 'bubble plain', text: message.content }),
  );
}

/** Set the id of a message shown before the server had saved it. */
export function confirmUserMessage(element, message) {
  element.dataset.messageId = message.id;
  element.classList.remove('pending');
}

export class AssistantMessage {
  #text = '';
  #renderTimer = null;

  constructor() {
    this.tools = h('div', { class: 'tools' });
    this.body = h('div', { class: 'bubble markdown' });
    this.meta = h('div', { class: 'message-meta' });
    this.element = h(
      'article',
      { class: 'message assistant', 'aria-label': 'Assistant', dataset: { role: 'assistant' } },
      this.tools,
      this.body,
      this.meta,
    );
  }

  static fromHistory(message) {
    const view = new AssistantMessage();
    for (const call of message.metadata?.tool_calls || []) {
      view.addToolCall(call);
      view.setToolResult(call);
    }
    view.finish(message);
    return view;
  }

  /** Streaming has begun: screen readers wait for the finished reply instead of each word. */
  startStreaming() {
    this.element.classList.add('streaming');
    this.element.setAttribute('aria-busy', 'true');
  }

  appendText(delta) {
    this.#text += delta;
    if (this.#renderTimer === null) {
      this.#renderTimer = setTimeout(() => this.#render(), RENDER_INTERVAL_MS);
    }
  }

  #render() {
    clearTimeout(this.#renderTimer);
    this.#renderTimer = null;
    this.body.replaceChildren(renderMarkdown(this.#text));
    this.element.dispatchEvent(new Event('rendered', { bubbles: true }));
  }

  addToolCall({ call_id: callId, name, arguments: args }) {
    if (this.tools.querySelector(`[data-call-id="${CSS.escape(callId)}"]`)) return;
    this.tools.append(
      h(
        'details',
        { class: 'tool-call', dataset: { callId } },
        h(
          'summary',
          {},
          h('span', { class: 'tool-label', text: 'Tool call' }),
          h('code', { class: 'tool-name', text: name }),
          h('span', { class: 'tool-status', text: 'running…' }),
        ),
        h('div', { class: 'tool-part' }, h('h3', { text: 'Arguments' }), h('pre', {}, h('code', { class: 'tool-arguments', text: prettyJson(args) }))),
        h('div', { class: 'tool-part' }, h('h3', { text: 'Output' }), h('pre', {}, h('code', { class: 'tool-output', text: '' }))),
      ),
    );
  }

  setToolResult({ call_id: callId, output }) {
    const call = this.tools.querySelector(`[data-call-id="${CSS.escape(callId)}"]`);
    if (!call) return;
    const done = output !== null && output !== undefined;
    call.querySelector('.tool-output').textContent = done ? prettyJson(output) : '(no output)';
    call.querySelector('.tool-status').textContent = done ? 'done' : 'no output';
  }

  /** The saved reply: its final text replaces the streamed one (they are equal). */
  finish(message) {
    this.element.dataset.messageId = message.id;
    if (message.metadata?.turn_id) this.element.dataset.turnId = message.metadata.turn_id;
    this.#text = message.content;
    this.#render();
    this.#stopStreaming();
    if (message.metadata?.status === 'cancelled') this.markStopped();
  }

  markStopped() {
    if (!this.meta.querySelector('.badge')) {
      this.meta.prepend(h('span', { class: 'badge', text: 'Stopped' }));
    }
  }

  /** The turn failed: say what happened and what the user can do about it. */
  showError({ code, message, retryable, retry_after_seconds: retryAfter }, onRetry) {
    if (this.#text) this.#render();
    this.#stopStreaming();
    const advice = errorAdvice(code, retryable, retryAfter);
    this.element.classList.add('failed');
    this.element.append(
      h(
        'div',
        { class: 'turn-error', role: 'alert' },
        h('p', { class: 'error-title', text: ERROR_TEXT[code] || 'The reply failed.' }),
        h('p', { class: 'error-detail', text: message }),
        h('p', { class: 'error-advice', text: advice }),
        onRetry ? h('button', { type: 'button', class: 'primary', text: 'Retry', onclick: onRetry }) : null,
      ),
    );
  }

  /** The stream was left (thread switched or lost) before the reply finished. */
  abandon() {
    this.#stopStreaming();
  }

  #stopStreaming() {
    this.element.classList.remove('streaming');
    this.element.removeAttribute('aria-busy');
  }
}
