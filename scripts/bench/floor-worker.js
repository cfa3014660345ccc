// The bench's floor: the least any Worker proxy can do. It reads the request body and POSTs it to
// the agent, returning the agent's answer. It runs in the same workerd process as the real Worker,
// on its own socket, so "floor" vs "proxied" isolates what the control plane itself costs.
export default {
  async fetch(request, env) {
    const body = await request.text();
    const res = await fetch(env.AGENT_URL, {
      method: 'POST',
      headers: { 'Content-Type': request.headers.get('Content-Type') ?? 'application/json' },
      body,
    });
    return new Response(res.body, {
      status: res.status,
      headers: { 'Content-Type': res.headers.get('Content-Type') ?? 'application/json' },
    });
  },
};
