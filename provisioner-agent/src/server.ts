import http from 'node:http';
import type { AgentState, Backend } from './contract.ts';

// Backends (Docker engine, EC2 control plane) land with the provisioner issue. Until then the
// agent serves the contract honestly: it knows of no agents and restarts nothing.
const noBackend: Backend = {
  async state(): Promise<AgentState> {
    return 'not_found';
  },
  async restart(): Promise<void> {
    throw new Error('no backend configured');
  },
};

const token = process.env.PROVISIONER_TOKEN;
const port = Number(process.env.PORT ?? 8790);

export function createServer(backend: Backend): http.Server {
  return http.createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!token || req.headers.authorization !== `Bearer ${token}`) return send(401, { error: 'unauthorized' });
    const match = /^\/workspaces\/([0-9a-f-]{36})\/(status|restart)$/.exec(req.url ?? '');
    if (!match) return send(404, { error: 'not found' });
    const [, id, action] = match;
    try {
      if (action === 'status' && req.method === 'GET') return send(200, { state: await backend.state(id!) });
      if (action === 'restart' && req.method === 'POST') {
        await backend.restart(id!);
        return send(202, { status: 'restarting' });
      }
      return send(405, { error: 'method not allowed' });
    } catch (err) {
      console.error('provisioner action failed', action, id, err);
      return send(503, { error: 'provisioner unavailable' });
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  createServer(noBackend).listen(port, '127.0.0.1', () => console.log(`provisioner-agent on 127.0.0.1:${port}`));
}
