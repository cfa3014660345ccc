import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createEc2Backend, LAUNCH_SETTLE_MS } from '../src/ec2/driver.ts';
import { TEXT } from '../src/errors.ts';
import { createProvisionerServer } from '../src/server.ts';
import { signedFetch } from './support/signed.ts';

const SECRET = 'ec2-test-secret-0123456789abcdefgh';
const ec2 = mockClient(EC2Client);
const logged: string[] = [];
const server = createProvisionerServer({
  secret: SECRET,
  backends: {
    ec2: createEc2Backend({
      client: new EC2Client({ region: 'eu-west-3', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } }),
      imageId: 'ami-0abc1234def567890',
      instanceType: 't3.medium',
      subnetId: 'subnet-0aa11bb22cc33dd44',
      securityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
      startCommand: 'echo agent-started',
    }),
  },
  log: (message, fields) => logged.push(JSON.stringify({ message, fields })),
});
let base = '';
const answers: string[] = [];

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  ec2.reset();
  logged.length = 0;
});

async function call(method: 'GET' | 'POST', p: string, body?: unknown) {
  const res = await signedFetch(base, SECRET, method, p, body);
  answers.push(res.text);
  return res;
}

const awsError = (name: string, message = `RAW-AWS-TEXT ${name} for vpc-0123 / ami-0abc`) =>
  new EC2ServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: 400, requestId: 'req-1' } });

const NASTY = `it's "quoted" $HOME \`id\` $(reboot)\nsecond line \\ end`;
const START = {
  runtime: 'hermes',
  tier: 3,
  env: { NASTY, MODEL: 'opus' },
  auth_token: 'tok_ec2_0123456789abcdef',
  platform_inbound_secret: 'pis_ec2_0123456789abcdef',
  platform_url: 'https://platform.example.test',
};

const reservation = (...instances: Array<{ id: string; state: string; launched?: number; ws?: string }>) => ({
  Reservations: [
    {
      Instances: instances.map((i) => ({
        InstanceId: i.id,
        State: { Name: i.state as never },
        LaunchTime: new Date(i.launched ?? 0),
        Tags: i.ws ? [{ Key: 'molecule:workspace-id', Value: i.ws }, { Key: 'molecule:managed', Value: 'true' }] : [],
      })),
    },
  ],
});

describe('ec2 start', () => {
  it('runs one instance with the configured AMI, type, subnet, groups, tags and user data', async () => {
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0123456789abcdef0', PrivateIpAddress: '10.1.2.3' }] });
    const res = await call('POST', `/v1/ec2/workspaces/${id}/start`, START);
    expect(res).toMatchObject({ status: 200, json: { instance_id: 'i-0123456789abcdef0', url: 'http://10.1.2.3:8000' } });

    const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    expect(input).toMatchObject({
      ImageId: 'ami-0abc1234def567890',
      InstanceType: 't3.medium',
      SubnetId: 'subnet-0aa11bb22cc33dd44',
      SecurityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
      MinCount: 1,
      MaxCount: 1,
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: 'molecule:workspace-id', Value: id },
            { Key: 'molecule:managed', Value: 'true' },
            { Key: 'Name', Value: `ws-${id}` },
          ],
        },
      ],
    });
    const script = Buffer.from(input.UserData!, 'base64').toString('utf8');
    expect(script.startsWith('#!/bin/sh\nset -eu\numask 077\n')).toBe(true);
    expect(script.trimEnd().endsWith('echo agent-started')).toBe(true);
    // Secrets never appear in clear in the script: they travel base64.
    expect(script).not.toContain(START.auth_token);

    // Run the script for real (with /configs redirected) to prove the files, modes and quoting.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-user-data-'));
    try {
      const out = execFileSync('sh', ['-c', script.replaceAll('/configs', dir)], { encoding: 'utf8' });
      expect(out.trim()).toBe('agent-started');
      expect(fs.readFileSync(path.join(dir, '.auth_token'), 'utf8')).toBe(START.auth_token);
      expect(fs.readFileSync(path.join(dir, '.platform_inbound_secret'), 'utf8')).toBe(START.platform_inbound_secret);
      for (const name of ['.auth_token', '.platform_inbound_secret', 'agent.env']) {
        expect(fs.statSync(path.join(dir, name)).mode & 0o777).toBe(0o600);
      }
      const env = execFileSync('sh', ['-c', `. ${dir}/agent.env; printf '%s|%s|%s|%s|%s' "$NASTY" "$WORKSPACE_ID" "$TIER" "$RUNTIME" "$PLATFORM_URL"`], {
        encoding: 'utf8',
      });
      expect(env).toBe(`${NASTY}|${id}|3|hermes|https://platform.example.test`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replaces a live instance of the same workspace first, and answers a null url without a private ip', async () => {
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).resolves(reservation({ id: 'i-00000000000000001', state: 'running', ws: id }));
    ec2.on(TerminateInstancesCommand).resolves({});
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-00000000000000002' }] });
    const res = await call('POST', `/v1/ec2/workspaces/${id}/start`, START);
    expect(res.json).toEqual({ instance_id: 'i-00000000000000002', url: null });
    expect(ec2.commandCalls(TerminateInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ['i-00000000000000001'] });
    const filters = ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input.Filters;
    expect(filters).toContainEqual({ Name: 'tag:molecule:workspace-id', Values: [id] });
    expect(filters).toContainEqual({ Name: 'tag:molecule:managed', Values: ['true'] });
  });

  it('refuses a start whose user data would exceed 16 KiB, before calling AWS', async () => {
    const env = { A: 'x'.repeat(9000), B: 'y'.repeat(9000) };
    const res = await call('POST', `/v1/ec2/workspaces/${randomUUID()}/start`, { ...START, env });
    expect(res).toMatchObject({ status: 400, json: { code: 'invalid', error: TEXT.userDataTooLarge } });
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });

  it('classifies AWS errors into fixed texts and keeps the raw text in the log', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const cases: Array<[string, number, string, string]> = [
      ['InsufficientInstanceCapacity', 503, 'unavailable', TEXT.ec2CapacityOrLimit],
      ['InvalidAMIID.NotFound', 424, 'image_missing', TEXT.ec2ImageMissing],
      ['UnauthorizedOperation', 503, 'unavailable', TEXT.backendFailed],
      // A NotFound while launching is not "the workspace is gone".
      ['InvalidInstanceID.NotFound', 503, 'unavailable', TEXT.backendFailed],
    ];
    for (const [name, status, code, text] of cases) {
      ec2.on(RunInstancesCommand).rejects(awsError(name));
      const res = await call('POST', `/v1/ec2/workspaces/${randomUUID()}/start`, START);
      expect(res).toMatchObject({ status, json: { code, error: text } });
    }
    expect(logged.join('\n')).toContain('RAW-AWS-TEXT InsufficientInstanceCapacity');
  });
});

describe('ec2 stop', () => {
  it('terminates the workspace\'s tagged instances; the request\'s instance only if it carries the workspace tags', async () => {
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).resolves(reservation({ id: 'i-0123456789abcdef0', state: 'running', ws: id }));
    ec2.on(TerminateInstancesCommand).resolves({});
    const res = await call('POST', `/v1/ec2/workspaces/${id}/stop`, { purge: true, instance_id: 'i-0123456789abcdef0' });
    expect(res).toMatchObject({ status: 200, json: { stopped: true, volume_removed: false } });
    const describes = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
    for (const d of describes) {
      expect(d.Filters).toContainEqual({ Name: 'tag:molecule:workspace-id', Values: [id] });
      expect(d.Filters).toContainEqual({ Name: 'tag:molecule:managed', Values: ['true'] });
    }
    expect(ec2.commandCalls(TerminateInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ['i-0123456789abcdef0'] });
  });

  it('also terminates a newer instance when the instance_id on file is stale', async () => {
    const id = randomUUID();
    // The Worker still holds i-…01 (gone); a start whose answer was lost launched i-…02.
    ec2.on(DescribeInstancesCommand).resolves(reservation({ id: 'i-00000000000000002', state: 'running', ws: id }));
    ec2.on(DescribeInstancesCommand, { InstanceIds: ['i-00000000000000001'] }).rejects(awsError('InvalidInstanceID.NotFound'));
    ec2.on(TerminateInstancesCommand).resolves({});
    expect((await call('POST', `/v1/ec2/workspaces/${id}/stop`, { purge: false, instance_id: 'i-00000000000000001' })).status).toBe(200);
    expect(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input)).toEqual([{ InstanceIds: ['i-00000000000000002'] }]);
  });

  it('finds the instance by tag without an instance_id; nothing found terminates nothing', async () => {
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    expect((await call('POST', `/v1/ec2/workspaces/${id}/stop`, { purge: false })).status).toBe(200);
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input.InstanceIds).toBeUndefined();
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
  });

  it('treats InvalidInstanceID.NotFound (describe or terminate) as success; other errors are errors', async () => {
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    expect((await call('POST', `/v1/ec2/workspaces/${id}/stop`, { purge: false, instance_id: 'i-0123456789abcdef0' })).status).toBe(200);
    ec2.reset();
    ec2.on(DescribeInstancesCommand).resolves(reservation({ id: 'i-0123456789abcdef0', state: 'stopped', ws: id }));
    ec2.on(TerminateInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    expect((await call('POST', `/v1/ec2/workspaces/${id}/stop`, { purge: false })).status).toBe(200);
    ec2.on(TerminateInstancesCommand).rejects(awsError('IncorrectInstanceState'));
    expect(await call('POST', `/v1/ec2/workspaces/${id}/stop`, { purge: false })).toMatchObject({
      status: 409,
      json: { code: 'conflict', error: TEXT.conflict },
    });
  });
});

describe('ec2 status, console and list', () => {
  it('maps instance states: pending/running → running, stopping/stopped/shutting-down/terminated → stopped, none → not_found', async () => {
    const id = randomUUID();
    const expected: Record<string, string> = {
      pending: 'running',
      running: 'running',
      stopping: 'stopped',
      stopped: 'stopped',
      'shutting-down': 'stopped',
      terminated: 'stopped',
    };
    for (const [state, mapped] of Object.entries(expected)) {
      ec2.on(DescribeInstancesCommand).resolves(reservation({ id: 'i-0123456789abcdef0', state, ws: id }));
      expect((await call('GET', `/v1/ec2/workspaces/${id}/status?instance_id=i-0123456789abcdef0`)).json).toEqual({ state: mapped });
    }
    ec2.on(DescribeInstancesCommand).resolves(
      reservation({ id: 'i-00000000000000001', state: 'terminated', ws: id }, { id: 'i-00000000000000002', state: 'pending', ws: id }),
    );
    expect((await call('GET', `/v1/ec2/workspaces/${id}/status`)).json).toEqual({ state: 'running' });
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    expect((await call('GET', `/v1/ec2/workspaces/${id}/status`)).json).toEqual({ state: 'not_found' });
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    expect((await call('GET', `/v1/ec2/workspaces/${id}/status?instance_id=i-0123456789abcdef0`)).json).toEqual({ state: 'not_found' });
    ec2.on(DescribeInstancesCommand).rejects(awsError('RequestLimitExceeded'));
    expect(await call('GET', `/v1/ec2/workspaces/${id}/status`)).toMatchObject({
      status: 503,
      json: { code: 'unavailable', error: TEXT.ec2CapacityOrLimit },
    });
  });

  it('decodes the newest instance\'s console output and caps it at its last 256 KiB', async () => {
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).resolves(
      reservation({ id: 'i-00000000000000001', state: 'terminated', ws: id, launched: 1 }, { id: 'i-00000000000000002', state: 'running', ws: id, launched: 2 }),
    );
    ec2.on(GetConsoleOutputCommand).resolves({ Output: Buffer.from('cloud-init: agent up\n').toString('base64') });
    expect((await call('GET', `/v1/ec2/workspaces/${id}/console`)).json).toEqual({ output: 'cloud-init: agent up\n' });
    expect(ec2.commandCalls(GetConsoleOutputCommand)[0]!.args[0].input).toEqual({ InstanceId: 'i-00000000000000002' });
    ec2.on(GetConsoleOutputCommand).resolves({ Output: Buffer.from(`${'a'.repeat(1000)}${'z'.repeat(256 * 1024)}`).toString('base64') });
    expect((await call('GET', `/v1/ec2/workspaces/${id}/console`)).json.output).toBe('z'.repeat(256 * 1024));
  });

  it('answers not_found for the console of a workspace with no instance', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    expect(await call('GET', `/v1/ec2/workspaces/${randomUUID()}/console`)).toMatchObject({
      status: 404,
      json: { code: 'not_found', error: TEXT.workspaceNotFound },
    });
  });

  it('lists managed, non-terminated workspaces across pages', async () => {
    const [a, b] = [randomUUID(), randomUUID()].sort();
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ ...reservation({ id: 'i-00000000000000001', state: 'running', ws: b }), NextToken: 'page-2' })
      .resolvesOnce(reservation({ id: 'i-00000000000000002', state: 'stopped', ws: a }, { id: 'i-00000000000000003', state: 'running', ws: b }, { id: 'i-00000000000000004', state: 'running' }));
    expect((await call('GET', '/v1/ec2/workspaces')).json).toEqual({ workspace_ids: [a, b] });
    const [first, second] = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
    expect(first!.Filters).toEqual([
      { Name: 'tag:molecule:managed', Values: ['true'] },
      { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
    ]);
    expect(second!.NextToken).toBe('page-2');
  });
});

describe('ec2 list and status bounds', () => {
  it('answers an error, never a silently partial list, when the pages do not end', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ ...reservation({ id: 'i-00000000000000001', state: 'running', ws: randomUUID() }), NextToken: 'more' });
    expect(await call('GET', '/v1/ec2/workspaces')).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input.MaxResults).toBe(1000);
  });

  it('does not call a just-launched instance not_found while EC2 reads catch up', async () => {
    let clock = 1_000_000;
    const backend = createEc2Backend(
      {
        client: new EC2Client({ region: 'eu-west-3', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } }),
        imageId: 'ami-0abc1234def567890',
        instanceType: 't3.medium',
        subnetId: 'subnet-0aa11bb22cc33dd44',
        securityGroupIds: ['sg-0123456789abcdef0'],
        startCommand: 'true',
      },
      () => clock,
    );
    const id = randomUUID();
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0123456789abcdef0' }] });
    await backend.start(id, START);
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    await expect(backend.status(id, 'i-0123456789abcdef0')).rejects.toMatchObject({ code: 'conflict' });
    clock += LAUNCH_SETTLE_MS;
    await expect(backend.status(id, 'i-0123456789abcdef0')).resolves.toBe('not_found');
  });
});

describe('no AWS text in any answer', () => {
  it('never echoed an AWS message (checked over every answer in this file)', () => {
    expect(answers.length).toBeGreaterThan(15);
    for (const text of answers) expect(text).not.toMatch(/RAW-AWS-TEXT|vpc-|ami-|subnet-|sg-|t3\.medium/);
  });
});
