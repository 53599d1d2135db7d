// DOM helpers. Every string reaches the page through textContent or setAttribute, never as
// HTML: the only HTML the page ever parses is sanitized markdown (see markdown.js).

/**
 * Create an element: h('button', { class: 'x', onclick: fn, text: 'Go' }, child, ...).
 * `on*` keys become event listeners; `text` sets textContent; `dataset` fills data-*;
 * true sets a boolean attribute; null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Tell screen-reader users about something that happened out of their focus. */
export function announce(text) {
  const region = $('#announcer');
  region.textContent = '';
  // A change after a tick is announced even when the same text repeats.
  setTimeout(() => { region.textContent = text; }, 30);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS = [
  ['year', 365 * 24 * 3600], ['month', 30 * 24 * 3600], ['week', 7 * 24 * 3600],
  ['day', 24 * 3600], ['hour', 3600], ['minute', 60],
];

/** "5 minutes ago", "yesterday", or "just now" for an ISO timestamp. */
export function timeAgo(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return 'just now';
}

/** Pretty-print a JSON string (tool arguments and outputs); anything else as it is. */
export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text ?? '');
  }
}

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
