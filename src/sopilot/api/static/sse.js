// Server-sent events read from a fetch response body (EventSource cannot POST or send an Authorization header).
// Follows the WHATWG event-stream format: frames end with a blank line; "event:" names the event, "data:" lines
// are joined with newlines, ":" lines are comments.

/** The stream's events, as ``{event, data}``, as they arrive. */
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    let end;
    while ((end = frameEnd(buffer)) !== null) {
      const event = parseFrame(buffer.slice(0, end.at));
      buffer = buffer.slice(end.at + end.length);
      if (event) yield event;
    }
    if (done) {
      const last = parseFrame(buffer);
      if (last) yield last;
      return;
    }
  }
}

function frameEnd(buffer) {
  const match = /\r\n\r\n|\n\n|\r\r/.exec(buffer);
  return match ? { at: match.index, length: match[0].length } : null;
}

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}
