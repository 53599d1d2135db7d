// Following one turn's reply stream to its `done` event, across dropped connections.
//
// Every event of a turn has an id (1, 2, 3, ...). When the connection drops before `done`,
// the page asks GET /api/threads/{id}/turns/{turn_id}/events with Last-Event-ID set to the
// last id it handled; the server replays what was missed and follows live. Events are
// handed on at most once, in order, so no text is ever shown twice.

import { ApiError, request } from './api.js';
import { readEvents } from './sse.js';
import { sleep } from './dom.js';

// Waits before each reconnect: quick at first, then backing off, about 30 s in all.
const RECONNECT_DELAYS_MS = [300, 1000, 2000, 4000, 8000, 15000];

/** The stream could not be followed to its end; the thread's messages hold the outcome. */
export class StreamLost extends Error {}

/**
 * Follow a turn. `open()` makes the first request (a send, a retry, or a resume) and resolves
 * to its Response; its errors (409, 413, ...) reach the caller untouched.
 *
 * @param {object} options
 * @param {string} options.threadId
 * @param {() => Promise<Response>} options.open
 * @param {(event: string, data: object) => void} options.onEvent
 * @param {(attempt: number) => void} [options.onReconnect]
 * @param {AbortSignal} [options.signal] stop listening (the turn goes on on the server)
 * @param {string} [options.turnId] known up front when resuming
 * @returns {Promise<object>} the `done` event's data
 */
export async function followTurn({ threadId, open, onEvent, onReconnect, signal, turnId = null }) {
  let lastId = 0;
  let response = await open();
  for (let attempt = 0; ; attempt++) {
    if (response) {
      const outcome = await drain(response, { signal, onEvent, after: lastId });
      lastId = outcome.lastId;
      turnId = outcome.turnId ?? turnId;
      if (outcome.done) return outcome.done;
      if (outcome.progressed) attempt = 0;
    }
    signal?.throwIfAborted();
    if (!turnId) throw new StreamLost('The connection dropped before the reply started');
    if (attempt >= RECONNECT_DELAYS_MS.length) throw new StreamLost('Could not reconnect');
    onReconnect?.(attempt + 1);
    await sleep(RECONNECT_DELAYS_MS[attempt]);
    signal?.throwIfAborted();
    response = await resume(threadId, turnId, lastId, signal);
  }
}

/** Resume a turn's stream after `lastId`; null when the request itself failed (retry it). */
async function resume(threadId, turnId, lastId, signal) {
  try {
    return await request('GET', `/api/threads/${threadId}/turns/${turnId}/events`, {
      headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(lastId) },
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    // 404: this server no longer holds the turn; it finished and is in the thread's messages.
    if (error instanceof ApiError && error.status !== 503) {
      throw new StreamLost(error.detail || 'The reply can no longer be followed');
    }
    return null; // offline, or the server is restarting: try again after the next delay
  }
}

/** Hand on the events of one response with ids after `after`, until `done` or a drop. */
async function drain(response, { signal, onEvent, after }) {
  const outcome = { lastId: after, turnId: null, done: null, progressed: false };
  const events = readEvents(response.body);
  try {
    for (;;) {
      let next;
      try {
        next = await events.next();
      } catch (error) {
        if (signal?.aborted) throw error;
        return outcome; // the connection dropped
      }
      if (next.done) return outcome; // the body ended without `done`: also a drop
      const { event, data: text, id: rawId } = next.value;
      const id = Number(rawId);
      if (Number.isInteger(id) && id > 0) {
        if (id <= outcome.lastId) continue; // seen before the reconnect
        outcome.lastId = id;
      }
      const data = JSON.parse(text);
      if (event === 'user_message') outcome.turnId = data.metadata?.turn_id ?? null;
      outcome.progressed = true;
      onEvent(event, data);
      if (event === 'done') {
        outcome.done = data;
        return outcome;
      }
    }
  } finally {
    await events.return();
  }
}
