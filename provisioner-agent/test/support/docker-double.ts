// A Docker Engine API double at the socket boundary: dockerode talks HTTP over a unix socket to
// this server exactly as it would to dockerd. It keeps containers and volumes in memory, answers
// with the daemon's recorded texts (Docker 24 and Podman 4 wordings below), and lets a test
// inject the next failure of any operation. Plain Node 22 can import this file (erasable TS only).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';

export type DockerOp =
  | 'create'
  | 'start'
  | 'inspect'
  | 'remove'
  | 'putArchive'
  | 'logs'
  | 'list'
  | 'createVolume'
  | 'removeVolume';

export interface DaemonAnswer {
  status: number;
  message: string;
}

export interface InjectedFailure extends DaemonAnswer {
  /** Also perform the operation before answering with the failure (e.g. a removal that raced). */
  apply?: boolean;
  /** How many consecutive calls fail (default 1). */
  times?: number;
  /**
   * Only calls about this container or volume fail (a name, or a workspace id standing for
   * `ws-<id>` and `ws-<id>-configs`), so tests sharing one double cannot take each other's failure.
   */
  ref?: string;
}

/** Daemon answers as recorded from real engines. */
export const DAEMON_TEXTS = {
  noSuchContainer: (name: string): DaemonAnswer => ({ status: 404, message: `No such container: ${name}` }),
  podmanNoSuchContainer: (name: string): DaemonAnswer => ({
    status: 404,
    message: `no container with name or ID "${name}" found: no such container`,
  }),
  removalInProgress: (name: string): DaemonAnswer => ({ status: 409, message: `removal of container ${name} is already in progress` }),
  noSuchImage: (image: string): DaemonAnswer => ({ status: 404, message: `No such image: ${image}` }),
  podmanNoSuchImage: (image: string): DaemonAnswer => ({ status: 404, message: `no such image: ${image}: image not known` }),
  nameInUse: (name: string, id: string): DaemonAnswer => ({
    status: 409,
    message: `Conflict. The container name "/${name}" is already in use by container "${id}". You have to remove (or rename) that container to be able to reuse that name.`,
  }),
  noSuchVolume: (name: string): DaemonAnswer => ({ status: 404, message: `get ${name}: no such volume` }),
  volumeInUse: (name: string, id: string): DaemonAnswer => ({ status: 409, message: `remove ${name}: volume is in use - [${id}]` }),
  /** A daemon failure whose raw text must never reach the Worker. */
  serverError: (detail = 'RAW-DAEMON-TEXT driver failed programming external connectivity'): DaemonAnswer => ({ status: 500, message: detail }),
} as const;

export interface DoubleFile {
  content: string;
  mode: number;
  uid: number;
  gid: number;
}

export interface DoubleContainer {
  id: string;
  name: string;
  image: string;
  /** Env as a map (the create request's `Env`, split on the first `=`). */
  env: Record<string, string>;
  labels: Record<string, string>;
  /** The create request body as dockerode sent it (HostConfig, NetworkingConfig, …). */
  create: Record<string, any>;
  state: 'created' | 'running' | 'exited';
  hostPort: number | null;
  /** What GET /containers/{id}/logs answers (stdout frames). */
  logs: string;
  /**
   * Instead of `logs`: the raw body of GET /containers/{id}/logs, produced lazily (it may be huge
   * or never end) and written chunk by chunk as the client reads it. `signal` aborts when the
   * client goes away. Chunks are sent as given, so a test decides where frames are split.
   */
  logBody?: (signal: AbortSignal) => Iterable<Buffer> | AsyncIterable<Buffer>;
  /** Files written via putArchive outside any volume mount, by absolute path. */
  files: Map<string, DoubleFile>;
}

export interface DoubleVolume {
  name: string;
  labels: Record<string, string>;
  /** Files written via putArchive under the volume's mount point, by path inside the volume. */
  files: Map<string, DoubleFile>;
}

/** One streamed answer of GET /containers/{id}/logs (a container with `logBody`). */
export interface LogStreamRecord {
  container: string;
  bytesSent: number;
  /** `complete`: the whole body was sent; `aborted`: the client closed the connection first. */
  state: 'streaming' | 'complete' | 'aborted';
}

/** A log frame as the daemon multiplexes a non-TTY container's output. */
export function logFrame(stream: 0 | 1 | 2, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

export interface DockerDouble {
  socketPath: string;
  /** Options for `new Docker(...)`. */
  dockerOptions: { socketPath: string };
  /** Image references that answer "No such image" on create (every other image exists). */
  missingImages: Set<string>;
  /** Every request received, in order: `METHOD /path` without the API version prefix or query. */
  requests: string[];
  /** Every streamed logs answer, in order. */
  logStreams: LogStreamRecord[];
  containers(): DoubleContainer[];
  /** By container name, container id or workspace id (`ws-<id>`). */
  container(ref: string): DoubleContainer | undefined;
  volumes(): DoubleVolume[];
  volume(name: string): DoubleVolume | undefined;
  /** The files in a workspace's config volume (`ws-<id>-configs`). */
  configFiles(workspaceId: string): Map<string, DoubleFile>;
  /** Make the next call(s) of `op` answer `failure` (FIFO per operation). */
  fail(op: DockerOp, failure: InjectedFailure): void;
  /** Seed a container directly (e.g. a foreign or stopped one for list tests). */
  addContainer(c: { name: string; labels?: Record<string, string>; state?: DoubleContainer['state']; image?: string }): DoubleContainer;
  /** Mark a container exited, as if its process died. */
  exit(ref: string): void;
  /** Remove a container behind the agent's back (someone ran `docker rm -f`). */
  remove(ref: string): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startDockerDouble(options: { socketPath?: string } = {}): Promise<DockerDouble> {
  const socketPath = options.socketPath ?? path.join(os.tmpdir(), `docker-double-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
  const containers = new Map<string, DoubleContainer>(); // by name
  const volumes = new Map<string, DoubleVolume>();
  const failures = new Map<DockerOp, InjectedFailure[]>();
  const missingImages = new Set<string>();
  const requests: string[] = [];
  const logStreams: LogStreamRecord[] = [];
  let nextPort = 40_000;

  const find = (ref: string) => containers.get(ref) ?? containers.get(`ws-${ref}`) ?? [...containers.values()].find((c) => c.id === ref);

  function newContainer(name: string, fields: Partial<DoubleContainer>): DoubleContainer {
    const container: DoubleContainer = {
      id: randomBytes(32).toString('hex'),
      name,
      image: 'unknown',
      env: {},
      labels: {},
      create: {},
      state: 'created',
      hostPort: null,
      logs: '',
      files: new Map(),
      ...fields,
    };
    containers.set(name, container);
    return container;
  }

  const concerns = (failure: InjectedFailure, target: string | undefined) =>
    failure.ref === undefined || (target !== undefined && [failure.ref, `ws-${failure.ref}`, `ws-${failure.ref}-configs`].includes(target));

  /** `target`: the container or volume name the call is about (none for list). */
  function takeFailure(op: DockerOp, target: string | undefined): InjectedFailure | undefined {
    const queue = failures.get(op) ?? [];
    const index = queue.findIndex((f) => concerns(f, target));
    const failure = queue[index];
    if (!failure) return undefined;
    if ((failure.times ?? 1) <= 1) queue.splice(index, 1);
    else failure.times = (failure.times ?? 1) - 1;
    return failure;
  }

  function mountsOf(c: DoubleContainer): Array<{ volume: string; target: string }> {
    const binds: string[] = c.create.HostConfig?.Binds ?? [];
    return binds.map((b) => b.split(':')).map(([volume, target]) => ({ volume: volume!, target: target! }));
  }

  function inspect(c: DoubleContainer) {
    return {
      Id: c.id,
      Name: `/${c.name}`,
      Image: c.image,
      State: { Status: c.state, Running: c.state === 'running', ExitCode: c.state === 'exited' ? 137 : 0 },
      Config: { Image: c.image, Env: Object.entries(c.env).map(([k, v]) => `${k}=${v}`), Labels: c.labels },
      HostConfig: c.create.HostConfig ?? {},
      NetworkSettings: {
        Ports: c.hostPort ? { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: String(c.hostPort) }] } : {},
      },
    };
  }

  const frames = (text: string): Buffer => (text === '' ? Buffer.alloc(0) : logFrame(1, text));

  async function untar(body: Buffer): Promise<Array<{ name: string; file: DoubleFile }>> {
    const extract = tar.extract();
    const out: Array<{ name: string; file: DoubleFile }> = [];
    await new Promise<void>((resolve, reject) => {
      extract.on('entry', (headers, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          if ((headers.type ?? 'file') === 'file') {
            out.push({
              name: headers.name.replace(/^\.\//, ''),
              file: { content: Buffer.concat(chunks).toString('utf8'), mode: (headers.mode ?? 0) & 0o7777, uid: headers.uid ?? 0, gid: headers.gid ?? 0 },
            });
          }
          next();
        });
        stream.resume();
      });
      extract.on('finish', () => resolve());
      extract.on('error', reject);
      extract.end(body);
    });
    return out;
  }

  type Answer = { status: number; json?: unknown; raw?: Buffer; stream?: { record: LogStreamRecord; body: NonNullable<DoubleContainer['logBody']> } };
  const error = (answer: DaemonAnswer): Answer => ({ status: answer.status, json: { message: answer.message } });

  async function handle(method: string, pathname: string, query: URLSearchParams, body: Buffer): Promise<Answer> {
    const route = `${method} ${pathname}`;
    let m: RegExpExecArray | null;
    const guard = (op: DockerOp, perform: () => Answer | Promise<Answer>, target?: string): Answer | Promise<Answer> => {
      const failure = takeFailure(op, target);
      if (!failure) return perform();
      if (!failure.apply) return error(failure);
      return Promise.resolve(perform()).then(() => error(failure));
    };

    if (route === 'GET /_ping') return { status: 200, raw: Buffer.from('OK') };
    if (route === 'GET /containers/json') {
      return guard('list', () => {
        const filters = JSON.parse(query.get('filters') ?? '{}') as { label?: string[] };
        const all = query.get('all') === 'true' || query.get('all') === '1';
        const wanted = (c: DoubleContainer) =>
          (all || c.state === 'running') &&
          (filters.label ?? []).every((f) => {
            const [k, v] = f.split('=');
            return v === undefined ? k! in c.labels : c.labels[k!] === v;
          });
        return {
          status: 200,
          json: [...containers.values()].filter(wanted).map((c) => ({ Id: c.id, Names: [`/${c.name}`], Image: c.image, Labels: c.labels, State: c.state })),
        };
      });
    }
    if (route === 'POST /containers/create') {
      return guard('create', () => {
        const spec = JSON.parse(body.toString('utf8')) as Record<string, any>;
        const name = query.get('name') ?? randomBytes(6).toString('hex');
        if (missingImages.has(spec.Image)) return error(DAEMON_TEXTS.noSuchImage(spec.Image));
        const existing = containers.get(name);
        if (existing) return error(DAEMON_TEXTS.nameInUse(name, existing.id));
        for (const bind of (spec.HostConfig?.Binds ?? []) as string[]) {
          const volume = bind.split(':')[0]!;
          if (!volume.startsWith('/') && !volumes.has(volume)) volumes.set(volume, { name: volume, labels: {}, files: new Map() });
        }
        const env = Object.fromEntries(
          ((spec.Env ?? []) as string[]).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
        );
        const c = newContainer(name, { image: spec.Image, env, labels: spec.Labels ?? {}, create: spec });
        return { status: 201, json: { Id: c.id, Warnings: [] } };
      }, query.get('name') ?? undefined);
    }
    if (route === 'POST /volumes/create') {
      const spec = JSON.parse(body.toString('utf8')) as { Name: string; Labels?: Record<string, string> };
      return guard('createVolume', () => {
        const volume = volumes.get(spec.Name) ?? { name: spec.Name, labels: spec.Labels ?? {}, files: new Map() };
        volumes.set(spec.Name, volume);
        return { status: 201, json: { Name: volume.name, Labels: volume.labels, Driver: 'local' } };
      }, spec.Name);
    }
    if (method === 'DELETE' && (m = /^\/volumes\/([^/]+)$/.exec(pathname))) {
      const name = decodeURIComponent(m[1]!);
      return guard('removeVolume', () => {
        if (!volumes.has(name)) return error(DAEMON_TEXTS.noSuchVolume(name));
        const user = [...containers.values()].find((c) => mountsOf(c).some((mount) => mount.volume === name));
        if (user) return error(DAEMON_TEXTS.volumeInUse(name, user.id));
        volumes.delete(name);
        return { status: 204 };
      }, name);
    }
    if ((m = /^\/containers\/([^/]+)(?:\/([a-z]+))?$/.exec(pathname))) {
      const ref = decodeURIComponent(m[1]!);
      const action = m[2] ?? '';
      const op: DockerOp | undefined = (
        { 'GET json': 'inspect', 'POST start': 'start', 'DELETE ': 'remove', 'PUT archive': 'putArchive', 'GET logs': 'logs' } as Record<string, DockerOp>
      )[`${method} ${action}`];
      if (!op) return { status: 404, json: { message: 'page not found' } };
      return guard(op, async () => {
        const c = find(ref);
        if (!c) return error(DAEMON_TEXTS.noSuchContainer(ref));
        switch (op) {
          case 'inspect':
            return { status: 200, json: inspect(c) };
          case 'start':
            if (c.state !== 'running') {
              c.state = 'running';
              const publishes = c.create.HostConfig?.PortBindings?.['8000/tcp'];
              c.hostPort = publishes ? nextPort++ : null;
            }
            return { status: 204 };
          case 'remove':
            if (c.state === 'running' && query.get('force') !== 'true') {
              return error({ status: 409, message: `cannot remove container "/${c.name}": container is running: stop the container before removing or force remove` });
            }
            containers.delete(c.name);
            return { status: 204 };
          case 'logs': {
            if (!c.logBody) return { status: 200, raw: frames(c.logs) };
            const record: LogStreamRecord = { container: c.name, bytesSent: 0, state: 'streaming' };
            logStreams.push(record);
            return { status: 200, stream: { record, body: c.logBody } };
          }
          case 'putArchive': {
            const target = query.get('path') ?? '/';
            const entries = await untar(body);
            const mount = mountsOf(c).find((mnt) => target === mnt.target || target.startsWith(`${mnt.target}/`));
            for (const { name, file } of entries) {
              if (mount) {
                const inVolume = path.posix.join(path.posix.relative(mount.target, target), name);
                volumes.get(mount.volume)!.files.set(inVolume, file);
              } else {
                c.files.set(path.posix.join(target, name), file);
              }
            }
            return { status: 200 };
          }
        }
        return { status: 500, json: { message: 'unreachable' } };
      }, find(ref)?.name ?? ref);
    }
    return { status: 404, json: { message: 'page not found' } };
  }

  /** Writes the body as the client takes it (waits for 'drain'), and stops when the client leaves. */
  async function writeStream(res: http.ServerResponse, record: LogStreamRecord, body: NonNullable<DoubleContainer['logBody']>) {
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    const writable = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    res.writeHead(200, { 'Content-Type': 'application/vnd.docker.multiplexed-stream' });
    try {
      for await (const chunk of body(gone.signal)) {
        if (gone.signal.aborted) break;
        record.bytesSent += chunk.length;
        if (!res.write(chunk)) await writable();
      }
    } catch {
      // A body that throws is a daemon that drops the connection.
      res.destroy();
    }
    if (gone.signal.aborted || res.destroyed) {
      record.state = 'aborted';
      return;
    }
    res.end(() => {
      record.state = 'complete';
    });
  }

  await fs.promises.rm(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://docker');
      const pathname = url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, '');
      requests.push(`${req.method} ${pathname}`);
      handle(req.method ?? 'GET', pathname, url.searchParams, Buffer.concat(chunks)).then(
        (answer) => {
          if (answer.stream) {
            void writeStream(res, answer.stream.record, answer.stream.body);
          } else if (answer.raw) {
            res.writeHead(answer.status, { 'Content-Type': 'application/vnd.docker.raw-stream' });
            res.end(answer.raw);
          } else if (answer.json !== undefined) {
            res.writeHead(answer.status, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify(answer.json));
          } else {
            res.writeHead(answer.status);
            res.end();
          }
        },
        (err: unknown) => {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ message: `docker double: ${String(err)}` }));
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });

  return {
    socketPath,
    dockerOptions: { socketPath },
    missingImages,
    requests,
    logStreams,
    containers: () => [...containers.values()],
    container: find,
    volumes: () => [...volumes.values()],
    volume: (name) => volumes.get(name),
    configFiles: (workspaceId) => volumes.get(`ws-${workspaceId}-configs`)?.files ?? new Map(),
    fail(op, failure) {
      const queue = failures.get(op) ?? [];
      queue.push({ ...failure });
      failures.set(op, queue);
    },
    addContainer({ name, labels = {}, state = 'running', image = 'seeded:latest' }) {
      return newContainer(name, { labels, state, image });
    },
    exit(ref) {
      const c = find(ref);
      if (c) c.state = 'exited';
    },
    remove(ref) {
      const c = find(ref);
      if (c) containers.delete(c.name);
    },
    reset() {
      containers.clear();
      volumes.clear();
      failures.clear();
      missingImages.clear();
      requests.length = 0;
      logStreams.length = 0;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await fs.promises.rm(socketPath, { force: true });
    },
  };
}

export { startTestProvisioner, type TestProvisioner } from './test-provisioner.ts';
