// The open thread's header: its title, and Rename, Archive and Delete (after confirming).

import { $, announce } from './dom.js';
import { UNTITLED } from './threads.js';

export class ThreadHeader {
  #thread = null;

  /** @param {{threads: import('./threads.js').ThreadList, maxTitleChars: number}} deps */
  constructor({ threads, maxTitleChars }) {
    this.threads = threads;
    this.title = $('#thread-title');
    this.actions = $('#thread-actions');
    this.form = $('#rename-form');
    this.input = $('#rename-input');
    this.archiveButton = $('#archive-thread');
    this.input.maxLength = maxTitleChars;
    $('#rename-thread').addEventListener('click', () => this.#startRename());
    $('#rename-cancel').addEventListener('click', () => this.#endRename());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#saveRename();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.#endRename();
    });
    this.archiveButton.addEventListener('click', () => this.#toggleArchive());
    $('#delete-thread').addEventListener('click', () => this.#delete());
  }

  show(thread) {
    this.#thread = thread;
    this.#endRename({ refocus: false });
    this.title.textContent = thread ? thread.title || UNTITLED : 'New chat';
    document.title = thread?.title ? `${thread.title} · Threadkeeper` : 'Threadkeeper';
    this.actions.hidden = !thread;
    const archivable = Boolean(thread) && 'status' in thread;
    this.archiveButton.hidden = !archivable;
    if (archivable) {
      const word = thread.status === 'archived' ? 'Unarchive' : 'Archive';
      this.archiveButton.textContent = word;
      this.archiveButton.setAttribute('aria-label', `${word} thread`);
    }
  }

  #startRename() {
    if (!this.#thread) return;
    this.input.value = this.#thread.title || '';
    this.title.hidden = true;
    this.actions.hidden = true;
    this.form.hidden = false;
    this.input.focus();
    this.input.select();
  }

  #endRename({ refocus = true } = {}) {
    const wasOpen = !this.form.hidden;
    this.form.hidden = true;
    this.title.hidden = false;
    this.actions.hidden = !this.#thread;
    if (wasOpen && refocus) $('#rename-thread').focus();
  }

  async #saveRename() {
    const thread = this.#thread;
    try {
      await this.threads.rename(thread.id, this.input.value.trim() || null);
      this.#endRename();
      announce('Thread renamed');
    } catch (error) {
      this.input.setCustomValidity(error.detail || error.message);
      this.input.reportValidity();
      this.input.addEventListener('input', () => this.input.setCustomValidity(''), { once: true });
    }
  }

  async #toggleArchive() {
    const thread = this.#thread;
    const status = thread.status === 'archived' ? 'active' : 'archived';
    await this.threads.setStatus(thread.id, status);
    announce(status === 'archived' ? 'Thread archived' : 'Thread moved back to active');
  }

  async #delete() {
    const thread = this.#thread;
    const name = thread.title || UNTITLED;
    const confirmed = await confirmDialog(
      `“${name}” and all its messages will be deleted, and the assistant forgets it. This cannot be undone.`,
    );
    if (!confirmed) return;
    try {
      await this.threads.delete(thread.id);
      announce(`Deleted ${name}`);
    } catch (error) {
      const text = error.status === 409
        ? 'A reply is being written in this thread; delete it when the reply has finished.'
        : error.detail || error.message;
      await confirmDialog(text, { title: 'Could not delete the thread', ok: null });
    }
  }
}

/** A modal question; resolves true for OK, false for Cancel or Escape. Focus returns after. */
export function confirmDialog(text, { title = 'Delete this thread?', ok = 'Delete' } = {}) {
  const dialog = $('#confirm-dialog');
  const okButton = $('#confirm-ok');
  const cancelButton = $('#confirm-cancel');
  const opener = document.activeElement;
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  okButton.hidden = ok === null;
  okButton.textContent = ok ?? '';
  cancelButton.textContent = ok === null ? 'Close' : 'Cancel';
  return new Promise((resolve) => {
    const finish = (answer) => {
      okButton.removeEventListener('click', onOk);
      cancelButton.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      opener?.focus?.();
      resolve(answer);
    };
    const onOk = () => finish(true);
    const onCancel = (event) => {
      event.preventDefault();
      finish(false);
    };
    okButton.addEventListener('click', onOk);
    cancelButton.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    cancelButton.focus();
  });
}
