import type { FeedRow } from './queries';

type Part = Record<string, unknown>;

/**
 * A feed row as clients read it. Bodies that were never set are omitted (not null). For inbound
 * A2A rows two additions serve existing pollers without disturbing the rest: the Python SDK reads
 * the message from a `data` object (`source`, `source_id`, `text`, `peer_name`, `peer_role`), and
 * the CLI's backends read a part's discriminator as `type` where A2A v0.3 writes `kind`, so the
 * returned copy of each part carries both. What agents receive over A2A is untouched.
 */
export function feedRowView(row: FeedRow) {
  const { request_body, response_body, tool_trace, peer_name, peer_role, ...rest } = row;
  const request = mirrorPartKinds(request_body);
  return {
    ...rest,
    ...(request != null ? { request_body: request } : {}),
    ...(response_body != null ? { response_body } : {}),
    ...(tool_trace != null ? { tool_trace } : {}),
    ...(row.activity_type === 'a2a_receive'
      ? {
          data: {
            source: row.source_id ? 'peer_agent' : 'canvas_user',
            source_id: row.source_id ?? '',
            text: messageText(request) ?? '',
            ...(peer_name != null ? { peer_name } : {}),
            ...(peer_role != null ? { peer_role } : {}),
          },
        }
      : {}),
  };
}

/** The parts of an A2A request, wherever a sender put them (`params.message.parts`, `params.parts`, `parts`). */
function partsOf(body: unknown): Part[] | undefined {
  const b = body as { params?: { message?: { parts?: unknown }; parts?: unknown }; parts?: unknown } | null;
  const parts = b?.params?.message?.parts ?? b?.params?.parts ?? b?.parts;
  return Array.isArray(parts) ? parts.filter((p): p is Part => typeof p === 'object' && p !== null) : undefined;
}

/** The text parts joined, as the channel plugin's extract-text reads them. */
export function messageText(body: unknown): string | undefined {
  const texts = (partsOf(body) ?? []).filter((p) => (p.kind ?? p.type) === 'text' && typeof p.text === 'string').map((p) => p.text as string);
  return texts.length > 0 ? texts.join('\n') : undefined;
}

function mirrorPartKinds(body: unknown): unknown {
  for (const part of partsOf(body) ?? []) {
    if (typeof part.kind === 'string' && part.type === undefined) part.type = part.kind;
    else if (typeof part.type === 'string' && part.kind === undefined) part.kind = part.type;
  }
  return body;
}
