// Signing in. The token is kept in this tab's sessionStorage (so a reload stays signed in
// and closing the tab forgets it) and sent only in the Authorization header: never in a
// URL, where it would end up in history, logs and Referer headers.
//
// Two ways to get one:
// - Development: "Continue as <name>" asks POST /api/dev/token (absent in production).
// - Production: the host app hands the token over with window.postMessage, from the page
//   that embeds this one in an iframe or opened it with window.open:
//       chat.postMessage({ type: 'threadkeeper:token', token }, 'https://chat.example.com')
//   Messages are accepted only from the embedding or opening window, and only from this
//   origin or one listed in CORS_ALLOW_ORIGINS. The page says it is ready (and later that its
//   token expired) with {type: 'threadkeeper:ready' | 'threadkeeper:token-expired'}, so the
//   host can send a token, or a fresh one, whenever asked.

import { call } from './api.js';

const TOKEN_KEY = 'threadkeeper.token';
const NAME_KEY = 'threadkeeper.name';

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The name last used for development sign-in (a convenience; not a secret). */
export function lastName() {
  return localStorage.getItem(NAME_KEY) || '';
}

/** Development sign-in: a token for `name` from the server itself. */
export async function devSignIn(name) {
  const body = await call('POST', '/api/dev/token', { json: { name } });
  localStorage.setItem(NAME_KEY, body.subject);
  return body.token;
}

/** The `sub` claim of a token, for display only (the server verifies tokens, not the page). */
export function tokenSubject(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).sub || '';
  } catch {
    return '';
  }
}

/** The window that may hand this page a token: its embedder or opener, if any. */
export function hostWindow() {
  if (window.parent !== window) return window.parent;
  return window.opener || null;
}

/**
 * Accept tokens from the host window and tell it the page is ready.
 *
 * @param {string[]} origins origins allowed besides this one (CORS_ALLOW_ORIGINS)
 * @param {(token: string) => void} onToken
 * @returns {(type: string) => void} sends a status message to the host
 */
export function listenToHost(origins, onToken) {
  const allowed = new Set([window.location.origin, ...origins]);
  window.addEventListener('message', (event) => {
    if (!allowed.has(event.origin)) return;
    if (event.source === null || event.source !== hostWindow()) return;
    const { type, token } = event.data || {};
    if (type === 'threadkeeper:token' && typeof token === 'string' && token.split('.').length === 3) {
      onToken(token);
    }
  });
  const tell = (type) => {
    const host = hostWindow();
    if (!host) return;
    // A message addressed to an origin the host does not have is silently dropped, so
    // nothing reaches a window whose origin is not allowed.
    for (const origin of allowed) host.postMessage({ type }, origin);
  };
  tell('threadkeeper:ready');
  return tell;
}
