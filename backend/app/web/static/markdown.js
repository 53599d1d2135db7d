// Markdown for assistant replies: marked parses, DOMPurify sanitizes, the result is a
// DocumentFragment (no HTML string ever reaches a DOM sink in this page's own code).
//
// Three layers, so one bug is not enough for script to run:
// 1. Raw HTML inside the markdown is escaped and shown as text (marked's `html` renderer),
//    so `<img src=x onerror=...>` in a reply reads as exactly that.
// 2. DOMPurify keeps only the tags markdown produces, and links only when they are http(s)
//    or mailto: a `javascript:` link loses its href and stays as plain text.
// 3. The page's CSP requires Trusted Types and allows only DOMPurify's policy, and allows
//    scripts only from this origin.
// Images become links, so a reply cannot make the browser fetch a URL (which could carry
// conversation data away) unless the user clicks it; CSP's img-src would block it anyway.

import { Marked } from './vendor/marked/marked.esm.js';
import DOMPurify from './vendor/dompurify/purify.es.mjs';

const ALLOWED_TAGS = [
  'a', 'blockquote', 'br', 'code', 'del', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr',
  'input', 'li', 'ol', 'p', 'pre', 'strong', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul',
];
const ALLOWED_ATTR = ['href', 'title', 'align', 'start', 'type', 'checked', 'disabled', 'class'];
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (char) => ESCAPES[char]);

const parser = new Marked({
  async: false,
  gfm: true,
  breaks: true,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

/** Whether a link may keep its href: http(s) and mailto only (DOMPurify already drops script). */
function safeLink(href) {
  try {
    return LINK_PROTOCOLS.has(new URL(href, window.location.href).protocol);
  } catch {
    return false;
  }
}

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    if (safeLink(node.getAttribute('href'))) {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer nofollow');
    } else {
      node.removeAttribute('href');
    }
  }
  if (node.tagName === 'INPUT') {
    if (node.getAttribute('type') !== 'checkbox') node.remove();
    else node.setAttribute('disabled', '');
  }
});

/** Render markdown to a sanitized DocumentFragment. */
export function renderMarkdown(text) {
  const html = parser.parse(String(text ?? ''));
  return DOMPurify.sanitize(html, { ALLOWED_TAGS, ALLOWED_ATTR, RETURN_DOM_FRAGMENT: true });
}
