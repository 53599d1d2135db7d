// The tasks side panel: the example agent's todo list over /api/tasks. The agent changes the
// same rows through its tools, so the chat asks the panel to refresh after each tool call.

import { call, query } from './api.js';
import { $, announce, h } from './dom.js';

const PAGE_SIZE = 100;

export class TaskPanel {
  #tasks = [];
  #after = null;
  #refreshTimer = null;

  constructor() {
    this.list = $('#task-list');
    this.empty = $('#tasks-empty');
    this.more = $('#tasks-more');
    this.error = $('#tasks-error');
    $('#task-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.#add();
    });
    this.more.addEventListener('click', () => this.#load({ append: true }));
  }

  /** Reload the list soon; calls in quick succession (several tool calls) load once. */
  refreshSoon() {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => this.refresh(), 150);
  }

  refresh() {
    return this.#load({ append: false });
  }

  async #load({ append }) {
    try {
      const page = await call('GET', `/api/tasks${query({ limit: PAGE_SIZE, after: append ? this.#after : null })}`);
      this.#tasks = append ? [...this.#tasks, ...page.data] : page.data;
      this.#after = page.after;
      this.more.hidden = !page.has_more;
      this.error.textContent = '';
      this.#render();
    } catch (error) {
      this.error.textContent = `Could not load tasks: ${error.message}`;
    }
  }

  #render() {
    this.list.replaceChildren(...this.#tasks.map((task) => this.#item(task)));
    this.empty.hidden = this.#tasks.length > 0;
  }

  #item(task) {
    const checkbox = h('input', {
      type: 'checkbox',
      id: `task-${task.id}`,
      checked: task.done,
      onchange: (event) => this.#update(task, { done: event.target.checked }),
    });
    return h(
      'li',
      { class: task.done ? 'task done' : 'task', dataset: { taskId: task.id } },
      checkbox,
      h('label', { for: `task-${task.id}`, text: task.title, title: task.notes || null }),
      h('button', {
        type: 'button',
        class: 'quiet icon',
        'aria-label': `Delete task ${task.title}`,
        title: 'Delete task',
        text: '×',
        onclick: () => this.#remove(task),
      }),
    );
  }

  async #add() {
    const input = $('#task-title');
    const title = input.value.trim();
    if (!title) return;
    try {
      await call('POST', '/api/tasks', { json: { title } });
      input.value = '';
      announce(`Added task ${title}`);
      await this.refresh();
    } catch (error) {
      this.error.textContent = error.detail || error.message;
    }
  }

  async #update(task, changes) {
    try {
      await call('PATCH', `/api/tasks/${task.id}`, { json: changes });
      await this.refresh();
    } catch (error) {
      this.error.textContent = error.detail || error.message;
      await this.refresh();
    }
  }

  async #remove(task) {
    try {
      await call('DELETE', `/api/tasks/${task.id}`);
      announce(`Deleted task ${task.title}`);
      await this.refresh();
    } catch (error) {
      this.error.textContent = error.detail || error.message;
    }
  }
}
