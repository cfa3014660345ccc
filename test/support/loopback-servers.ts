// Real HTTP peers on loopback for the Worker under test: agents with scripted behaviour (the
// provisioner-agent is in provisioner-control.ts). Started by the vitest global setup, in Node.
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';

type Received = { headers: http.IncomingHttpHeaders; body: string };

export async function startLoopbackServers(): Promise<{ port: number; close: () => Promise<void> }> {
  const received = new Map<string, Received[]>();
  // Per-name concurrency of the `slow` behaviour: requests in flight now, and the most seen at once.
  const inFlight = new Map<string, { now: number; peak: number }>();

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://loopback');
    const parts = url.pathname.split('/').filter(Boolean);
    const body = await readBody(req);
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(value));
    };

    if (parts[0] === 'agent') {
      // /agent/<behaviour>/<arg?>/<name>: every request is recorded under <name>.
      const name = parts[parts.length - 1]!;
      received.set(name, [...(received.get(name) ?? []), { headers: req.headers, body }]);
      const behaviour = parts[1];
      if (behaviour === 'echo') {
        let rpc: { id?: unknown } = {};
        try { rpc = JSON.parse(body); } catch { /* echo anyway */ }
        return json(200, { jsonrpc: '2.0', id: rpc.id ?? null, result: { echoed: rpc, metadata: { tool_trace: [{ tool: 'echo' }] } } });
      }
      if (behaviour === 'reply') {
        // /agent/reply/<name>: an A2A agent's answer, a message whose text part echoes the text it got.
        let rpc: { id?: unknown; params?: { message?: { parts?: { text?: unknown }[] } } } = {};
        try { rpc = JSON.parse(body); } catch { /* answer anyway */ }
        const text = rpc.params?.message?.parts?.find((p) => typeof p.text === 'string')?.text ?? '';
        return json(200, { jsonrpc: '2.0', id: rpc.id ?? null, result: { kind: 'message', role: 'agent', messageId: 'reply-1', parts: [{ kind: 'text', text: `done: ${text}` }] } });
      }
      if (behaviour === 'rpc-error') {
        // /agent/rpc-error/<name>: a JSON-RPC error with HTTP 200, its message carrying internal text.
        return json(200, { jsonrpc: '2.0', id: null, error: { code: -32603, message: 'Traceback: /srv/agent/secret_path.py' } });
      }
      if (behaviour === 'slow') {
        // /agent/slow/<ms>/<name>: echoes after <ms>, so overlapping deliveries are observable.
        const gauge = inFlight.get(name) ?? { now: 0, peak: 0 };
        inFlight.set(name, gauge);
        gauge.now += 1;
        gauge.peak = Math.max(gauge.peak, gauge.now);
        setTimeout(() => {
          gauge.now -= 1;
          json(200, { jsonrpc: '2.0', id: null, result: { slow: true } });
        }, Number(parts[2]));
        return;
      }
      if (behaviour === 'echo-then-reset') {
        // /agent/echo-then-reset/<n>/<name>: answers the first <n> requests, then drops every
        // connection (an agent that became busy again).
        if (received.get(name)!.length > Number(parts[2])) return req.socket.destroy();
        return json(200, { jsonrpc: '2.0', id: null, result: { accepted: true } });
      }
      if (behaviour === 'unstorable') {
        // /agent/unstorable/<name>: accepts everything, but answers a message whose text is
        // "poison" with a NUL character, which Postgres refuses to store in jsonb.
        const poisoned = body.includes('"text":"poison"');
        return json(200, { jsonrpc: '2.0', id: null, result: poisoned ? { text: '\u0000' } : { accepted: true } });
      }
      if (behaviour === 'status') {
        return json(Number(parts[2]), { error: 'Traceback (most recent call last): File "/srv/agent/secret_path.py", line 3' });
      }
      if (behaviour === 'hang') return; // never answers; the Worker's deadline must fire
      if (behaviour === 'drip') {
        // /agent/drip/<everyMs>/<totalMs>/<name>: headers at once, then a byte every <everyMs> for
        // <totalMs> (JSON allows leading whitespace), then the answer: a long-running agent that
        // keeps streaming.
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const started = Date.now();
        const timer = setInterval(() => {
          if (Date.now() - started < Number(parts[3])) return void res.write(' ');
          clearInterval(timer);
          res.end(JSON.stringify({ jsonrpc: '2.0', id: null, result: { dripped: true, usage: { input_tokens: 7, output_tokens: 3 } } }));
        }, Number(parts[2]));
        req.on('close', () => clearInterval(timer));
        return;
      }
      if (behaviour === 'stall') {
        // /agent/stall/<name>: headers and the start of a body, then silence.
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return void res.write('{"jsonrpc":"2.0",');
      }
      if (behaviour === 'answer') {
        // /agent/answer/<name>: answers with the JSON the request carried in params.message.metadata.answer.
        let answer: unknown = null;
        try { answer = JSON.parse(body).params.message.metadata.answer; } catch { /* null */ }
        return json(200, answer);
      }
      if (behaviour === 'stall-framed') {
        // /agent/stall-framed/<name>: a framed (Content-Length) answer that stops half-way and stays silent.
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100' });
        return void res.write('{"jsonrpc":"2.0",');
      }
      if (behaviour === 'reset') return req.socket.destroy();
      if (behaviour === 'close-mid-body') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
        res.write('{"jsonrpc":"2.0","result":');
        setTimeout(() => req.socket.destroy(), 20);
        return;
      }
      if (behaviour === 'large') {
        // /agent/large/<kib>/<name>: a valid answer of about <kib> KiB, framed by Content-Length.
        const answer = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: null, result: { text: 'y'.repeat(Number(parts[2]) * 1024) } }));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(answer.byteLength) });
        return res.end(answer);
      }
      if (behaviour === 'gzip') {
        // /agent/gzip/<name>: a compressible answer sent gzip-encoded: its Content-Length counts the
        // compressed bytes, not the bytes the Worker reads.
        const answer = gzipSync(JSON.stringify({ jsonrpc: '2.0', id: null, result: { text: 'z'.repeat(64 * 1024) } }));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': String(answer.byteLength) });
        return res.end(answer);
      }
      if (behaviour === 'chunked-with-length') {
        // /agent/chunked-with-length/<name>: a chunked answer that also declares a (wrong)
        // Content-Length, its first chunk exactly that long; Transfer-Encoding wins (RFC 9112).
        const answer = '{"jsonrpc":"2.0","id":null,"result":{"text":"chunked wins"}}';
        const first = answer.slice(0, 12);
        const rest = answer.slice(12);
        req.socket.write(
          `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${first.length}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
            `${first.length.toString(16)}\r\n${first}\r\n`,
        );
        setTimeout(() => req.socket.end(`${rest.length.toString(16)}\r\n${rest}\r\n0\r\n\r\n`), 20);
        return;
      }
      if (behaviour === 'big') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const chunk = 'x'.repeat(1024 * 1024);
        for (let i = 0; i < 11; i++) res.write(chunk);
        return res.end();
      }
      return json(404, { error: 'unknown behaviour' });
    }

    if (parts[0] === '_received') return json(200, received.get(parts[1]!) ?? []);
    if (parts[0] === '_inflight') return json(200, inFlight.get(parts[1]!) ?? { now: 0, peak: 0 });

    json(404, { error: 'not found' });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });
}
