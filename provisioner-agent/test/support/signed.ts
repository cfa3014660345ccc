import { signRequest } from '../../../src/provisioning/protocol.ts';

/** A request signed as the Worker signs it; `mutate` tampers with it after signing. */
export async function signedFetch(
  baseUrl: string,
  secret: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  mutate?: (req: { path: string; body: string; headers: Record<string, string> }) => void,
): Promise<{ status: number; json: any; text: string }> {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const req = { path, body: text, headers: { ...(await signRequest(secret, method, path, text)), 'content-type': 'application/json' } };
  mutate?.(req);
  const res = await fetch(`${baseUrl}${req.path}`, { method, headers: req.headers, body: method === 'GET' ? undefined : req.body });
  const answer = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(answer);
  } catch {
    // left null: the test asserts on it
  }
  return { status: res.status, json, text: answer };
}
