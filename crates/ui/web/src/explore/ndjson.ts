// Newline-delimited JSON read chunk by chunk, as the streamed search arrives: a chunk may end in
// the middle of a line, or in the middle of a UTF-8 character, and neither may be lost or mangled.

export class NdjsonLines {
  private decoder = new TextDecoder();
  private rest = "";

  /** The complete lines this chunk finishes, parsed; blank lines are skipped. */
  push(chunk: Uint8Array): unknown[] {
    const parts = (this.rest + this.decoder.decode(chunk, { stream: true })).split("\n");
    this.rest = parts.pop() ?? "";
    return parts.filter((line) => line.trim() !== "").map(parseLine);
  }

  /** The last line when the stream ended without a newline after it. */
  finish(): unknown[] {
    const last = this.rest + this.decoder.decode();
    this.rest = "";
    return last.trim() === "" ? [] : [parseLine(last)];
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new SyntaxError(`the server sent a line that is not JSON: ${line.slice(0, 200)}`);
  }
}
