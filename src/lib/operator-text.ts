// Operator-supplied diagnostics (a bootstrap watcher's error line and log tail) on their way to a
// canvas: made safe to render as plain text, and bounded in UTF-8 bytes the way the Go platform
// bounded them, without ever splitting a character.

/** ANSI escape sequences (colours, cursor moves) a captured console is full of: removed whole, not left as `[31m`. */
const ANSI_ESCAPES = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b[@-Z\\-_]/g;
/** C0 and C1 controls and DEL, except tab and line feed. */
const CONTROLS_BUT_TAB_LF = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
const LINE_BREAKS = /\r\n|[\r\u2028\u2029]/g;

/** A log as plain text: line feeds and tabs kept (CR, CRLF and Unicode separators become LF), every other control removed. */
export function plainLog(text: string): string {
  return text.replace(ANSI_ESCAPES, '').replace(LINE_BREAKS, '\n').replace(CONTROLS_BUT_TAB_LF, '');
}

/** One line of plain text: every control and line break becomes a space, runs of spaces collapse, ends trimmed. */
export function plainLine(text: string): string {
  return plainLog(text).replace(/[\t\n]/g, ' ').replace(/ {2,}/g, ' ').trim();
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const isContinuation = (byte: number) => (byte & 0xc0) === 0x80;

/** The first `maxBytes` UTF-8 bytes of `text`, cut before a partial character. */
export function headBytes(text: string, maxBytes: number): string {
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && isContinuation(bytes[end]!)) end -= 1;
  return decoder.decode(bytes.subarray(0, end));
}

/** The last `maxBytes` UTF-8 bytes of `text`, cut after a partial character; `marker` prefixed when anything was cut. */
export function tailBytes(text: string, maxBytes: number, marker: string): string {
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let start = bytes.length - maxBytes;
  while (start < bytes.length && isContinuation(bytes[start]!)) start += 1;
  return marker + decoder.decode(bytes.subarray(start));
}
