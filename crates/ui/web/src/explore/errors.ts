// The server's TraceQL errors name their position as `line L, col C`; this finds it so the
// editor can mark the spot (kept apart from the editor so it is testable without a DOM).

export interface ServerError {
  message: string;
  /** 1-based, as the server reports them. */
  line?: number;
  column?: number;
}

export function parseErrorPosition(message: string): ServerError {
  const match = /line (\d+), col(?:umn)? (\d+)/i.exec(message);
  if (!match) return { message };
  return { message, line: Number(match[1]), column: Number(match[2]) };
}
