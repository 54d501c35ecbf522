// Server-sent events over fetch: EventSource cannot send an Authorization header, so the page
// reads the stream itself and parses the text/event-stream format (WHATWG HTML §9.2).

import { authHeaders } from "./api.js";

/** Incremental parser: feed it decoded text chunks, it calls `onEvent({type, data, id})`. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
    this.lastEventId = "";
    this.retryMs = null;
  }

  reset() {
    this.type = "";
    this.data = [];
  }

  feed(chunk) {
    this.buffer += chunk;
    // A line ends with CRLF, LF or CR; keep a trailing partial line (or a lone CR that may be
    // the first half of a CRLF) for the next chunk.
    const lines = this.buffer.split(/\r\n|\n|\r(?!$)/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line.endsWith("\r") ? line.slice(0, -1) : line);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
  }

  dispatch() {
    if (this.data.length > 0) {
      this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId });
    }
    this.reset();
  }
}

/**
 * Open the stream at `url` and keep it open: after a dropped connection wait (1 s, doubling to
 * 30 s) and reconnect with `Last-Event-ID`, unless `shouldReconnect()` says the job is over.
 * Returns `{close()}`. Handlers: `onEvent(type, parsedData)`, `onOpen()`, `onStatus(text)`.
 */
export function subscribe(url, { onEvent, onOpen, onStatus, shouldReconnect = () => true }) {
  const controller = new AbortController();
  let delay = 1000;
  let closed = false;
  const parser = new SseParser(({ type, data }) => {
    let parsed = data;
    try {
      parsed = JSON.parse(data);
    } catch {
      // a non-JSON payload is passed on as text
    }
    onEvent(type, parsed);
  });

  async function connect() {
    while (!closed) {
      try {
        const headers = authHeaders({ Accept: "text/event-stream", "Cache-Control": "no-cache" });
        if (parser.lastEventId) headers["Last-Event-ID"] = parser.lastEventId;
        const response = await fetch(url, { headers, signal: controller.signal });
        if (!response.ok || !response.body) {
          onStatus?.(`event stream: HTTP ${response.status}`);
          if (response.status === 401 || response.status === 404) return;
        } else {
          delay = 1000;
          onStatus?.("live");
          onOpen?.();
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(value);
          }
          parser.buffer = "";
          parser.reset();
        }
      } catch (error) {
        if (closed || error.name === "AbortError") return;
        onStatus?.(`event stream lost: ${error.message}`);
      }
      if (closed || !shouldReconnect()) {
        onStatus?.("ended");
        return;
      }
      const wait = parser.retryMs ?? delay;
      onStatus?.(`reconnecting in ${Math.round(wait / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, wait));
      delay = Math.min(delay * 2, 30000);
    }
  }

  connect();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
