// tar-stream 2.x ships no types and @types/tar-stream is not installed; only what the agent and
// its Docker double use.
declare module 'tar-stream' {
  import type { Readable, Writable } from 'node:stream';

  export interface Headers {
    name: string;
    mode?: number;
    uid?: number;
    gid?: number;
    size?: number;
    mtime?: Date;
    type?: 'file' | 'directory' | 'symlink' | string;
  }
  export interface Pack extends Readable {
    entry(headers: Headers, buffer: Buffer | string, callback?: (err?: Error | null) => void): Writable;
    finalize(): void;
  }
  export interface Extract extends Writable {
    on(event: 'entry', listener: (headers: Headers, stream: Readable, next: () => void) => void): this;
    on(event: 'finish', listener: () => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
  }
  export function pack(): Pack;
  export function extract(): Extract;
  const tar: { pack: typeof pack; extract: typeof extract };
  export default tar;
}
