import { CONFIG_DIR } from '../agent-env.ts';

/** EC2 refuses user data over 16 KiB (before base64). */
export const USER_DATA_MAX_BYTES = 16 * 1024;

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
/** POSIX single quotes: nothing inside is special except the quote itself. */
export const shellQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/** `export KEY='value'` lines; keys are validated identifiers, values are quoted. */
export function envFile(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([key, value]) => `export ${key}=${shellQuote(value)}\n`)
    .join('');
}

/**
 * The boot script: writes the secrets and the env file to /configs (0600, umask 077 so they are
 * never readable in between) and runs the operator's start command. Every value travels base64,
 * so no content can end a quote or a heredoc.
 */
export function userDataScript(files: { authToken: string; inboundSecret: string; env: Record<string, string> }, startCommand: string): string {
  const write = (name: string, content: string) => `printf '%s' '${b64(content)}' | base64 -d > ${CONFIG_DIR}/${name}\n`;
  return (
    '#!/bin/sh\nset -eu\numask 077\n' +
    `mkdir -p ${CONFIG_DIR}\n` +
    write('.auth_token', files.authToken) +
    write('.platform_inbound_secret', files.inboundSecret) +
    write('agent.env', envFile(files.env)) +
    `chmod 600 ${CONFIG_DIR}/.auth_token ${CONFIG_DIR}/.platform_inbound_secret ${CONFIG_DIR}/agent.env\n` +
    `${startCommand}\n`
  );
}
