// Threadkeeper's chat page: signs in, then wires the sidebar, the conversation, the header
// and the tasks panel together. Loaded as an ES module from this origin only (see the CSP).

import { onAuthLost, setToken } from './api.js';
import { devSignIn, forgetToken, hostWindow, lastName, listenToHost, storeToken, storedToken, tokenSubject } from './auth.js';
import { ChatView } from './chat.js';
import { $, announce } from './dom.js';
import { ThreadHeader } from './header.js';
import { SearchPanel } from './search.js';
import { TaskPanel } from './tasks.js';
import { ThreadList } from './threads.js';

const NARROW = window.matchMedia('(max-width: 800px)');
const THREAD_KEY = 'threadkeeper.thread';

async function main() {
  const config = await (await fetch('/web/config.json')).json();
  const embedded = hostWindow() !== null;
  let app = null;
  let tellHost = () => {};

  const start = async (token) => {
    storeToken(token);
    setToken(token);
    $('#who').textContent = tokenSubject(token);
    if (!app) app = createApp(config, { canSignOut: !embedded });
    try {
      await app.loadThreads(); // also proves the token is good
    } catch (error) {
      if (error.status === 401) return; // onAuthLost took over
      throw error;
    }
    show('app'); // before the first thread opens, so its history is laid out and scrolled
    await app.openFirst();
    app.chat.focus();
  };

  onAuthLost(() => {
    forgetToken();
    setToken(null);
    tellHost('threadkeeper:token-expired'); // a host app answers with a fresh token
    showSignIn(config, { embedded, expired: true, onDevToken: start });
  });
  tellHost = listenToHost(config.host_origins, (token) => start(token));

  const saved = storedToken();
  if (saved) {
    await start(saved);
    if (!$('#app').hidden) return;
  }
  showSignIn(config, { embedded, onDevToken: start });
}

function show(view) {
  $('#loading').hidden = true;
  $('#signin').hidden = view !== 'signin';
  $('#app').hidden = view !== 'app';
}

let devSignInWired = false;

function showSignIn(config, { embedded, expired = false, onDevToken = null }) {
  show('signin');
  const useDev = config.dev_sign_in && !embedded;
  $('#dev-signin').hidden = !useDev;
  $('#host-signin').hidden = useDev;
  $('#signin-error').textContent = expired ? 'Your session has ended; sign in again.' : '';
  if (!useDev) return;
  const form = $('#dev-signin');
  const input = $('#signin-name');
  const submit = $('#signin-submit');
  const label = () => {
    const name = input.value.trim();
    submit.textContent = name ? `Continue as ${name}` : 'Continue';
  };
  if (!devSignInWired && onDevToken) {
    devSignInWired = true;
    input.value = lastName();
    input.addEventListener('input', label);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      submit.disabled = true;
      try {
        await onDevToken(await devSignIn(input.value.trim()));
      } catch (error) {
        $('#signin-error').textContent = error.detail || error.message;
      } finally {
        submit.disabled = false;
      }
    });
  }
  label();
  input.focus();
}

function createApp(config, { canSignOut }) {
  const tasks = new TaskPanel();
  let header = null;
  let chat = null;
  const threads = new ThreadList({
    onSelect: async (thread) => {
      closeDrawers();
      header.show(thread);
      if (thread) sessionStorage.setItem(THREAD_KEY, thread.id);
      else sessionStorage.removeItem(THREAD_KEY);
      await chat.open(thread);
    },
    onUpdate: (thread) => {
      if (thread.id === threads.currentId) header.show(thread);
    },
  });
  header = new ThreadHeader({ threads, maxTitleChars: config.max_title_chars });
  chat = new ChatView({ threads, tasks, config });
  // A result opens its thread and, when the message is on the loaded page, shows it.
  const search = new SearchPanel({
    onOpen: async (hit) => {
      await threads.open(hit.thread_id);
      const found = hit.message_id && chat.find(hit.message_id);
      if (found) {
        found.scrollIntoView({ block: 'center' });
        found.classList.add('found');
      }
    },
  });

  // A new chat is created on the server with its first message, so a click followed by
  // fast typing can never send into the previous thread, and no empty threads pile up.
  $('#new-thread').addEventListener('click', async () => {
    search.clear();
    await threads.select(null);
    chat.focus();
    announce('New chat');
  });
  wireDrawers();
  const signOut = $('#sign-out');
  signOut.hidden = !canSignOut;
  signOut.addEventListener('click', () => {
    forgetToken();
    sessionStorage.removeItem(THREAD_KEY);
    window.location.reload();
  });

  return {
    chat,
    async loadThreads() {
      await threads.load();
      tasks.refresh();
    },
    async openFirst() {
      const remembered = sessionStorage.getItem(THREAD_KEY);
      const first = document.querySelector('.thread-item')?.dataset.threadId ?? null;
      const known = remembered && document.querySelector(`.thread-item[data-thread-id="${CSS.escape(remembered)}"]`);
      await threads.select(known ? remembered : first);
    },
  };
}

// Narrow screens: the threads and the tasks are drawers over the conversation.
function wireDrawers() {
  for (const [buttonId, drawerId] of [['toggle-threads', 'sidebar'], ['toggle-tasks', 'tasks']]) {
    const button = $(`#${buttonId}`);
    button.addEventListener('click', () => {
      const open = !$(`#${drawerId}`).classList.contains('open');
      closeDrawers();
      $(`#${drawerId}`).classList.toggle('open', open);
      button.setAttribute('aria-expanded', String(open));
      if (open) $(`#${drawerId}`).querySelector('button, input')?.focus();
    });
  }
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && document.querySelector('.drawer.open')) {
      const drawer = document.querySelector('.drawer.open');
      closeDrawers();
      $(drawer.id === 'sidebar' ? '#toggle-threads' : '#toggle-tasks').focus();
    }
  });
  NARROW.addEventListener('change', closeDrawers);
}

function closeDrawers() {
  for (const drawer of document.querySelectorAll('.drawer.open')) drawer.classList.remove('open');
  $('#toggle-threads').setAttribute('aria-expanded', 'false');
  $('#toggle-tasks').setAttribute('aria-expanded', 'false');
}

main().catch((error) => {
  $('#loading').textContent = `Threadkeeper could not start: ${error.message}`;
});
