// Server-Sent Events over fetch(). EventSource can neither POST nor send an Authorization
// header, so the page reads the response body itself. The parser follows the HTML standard's
// event-stream rules: lines end in CR, LF or CRLF (even split across chunks); `data:` lines
// are joined with "\n"; lines starting with ":" are comments (the server's ": ping"); `id:`
// sets the last event id, which every later event carries; a blank line dispatches.

export class EventStreamParser {
  #buffer = '';
  #skipLineFeed = false; // the previous chunk ended in CR: a leading LF belongs to it
  #data = [];
  #type = '';
  #lastEventId = '';

  /** Feed decoded text; returns the events it completed, as {event, data, id}. */
  feed(text) {
    const events = [];
    let start = 0;
    if (this.#skipLineFeed && text.startsWith('\n')) start = 1;
    this.#skipLineFeed = false;
    for (let i = start; i < text.length; i++) {
      const char = text[i];
      if (char !== '\n' && char !== '\r') continue;
      const line = this.#buffer + text.slice(start, i);
      this.#buffer = '';
      if (char === '\r') {
        if (i + 1 < text.length) {
          if (text[i + 1] === '\n') i++;
        } else {
          this.#skipLineFeed = true;
        }
      }
      start = i + 1;
      const event = this.#line(line);
      if (event) events.push(event);
    }
    this.#buffer += text.slice(start);
    return events;
  }

  #line(line) {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#type = value;
    else if (field === 'id' && !value.includes('\0')) this.#lastEventId = value;
    // `retry:` is ignored: the page paces its own reconnects.
    return null;
  }

  #dispatch() {
    if (this.#data.length === 0) {
      this.#type = '';
      return null;
    }
    const event = { event: this.#type || 'message', data: this.#data.join('\n'), id: this.#lastEventId };
    this.#data = [];
    this.#type = '';
    return event;
  }
}

/** The events of a fetch() response body, as they arrive. Breaking out cancels the body. */
export async function* readEvents(body) {
  const parser = new EventStreamParser();
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield* parser.feed(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
