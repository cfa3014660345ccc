import { describe, expect, it } from 'vitest';
import { backendsFromEnv, DEFAULT_SOCKET, dockerOptions } from '../src/main.ts';

const EC2 = {
  EC2_REGION: 'eu-west-3',
  EC2_AMI_ID: 'ami-0abc1234def567890',
  EC2_INSTANCE_TYPE: 't3.medium',
  EC2_SUBNET_ID: 'subnet-0aa11bb22cc33dd44',
  EC2_SECURITY_GROUP_IDS: 'sg-0123456789abcdef0, sg-0fedcba9876543210',
};

describe('backends from the environment', () => {
  it('reads DOCKER_HOST (unix or tcp), else the default socket if it exists, else no docker', () => {
    expect(dockerOptions({ DOCKER_HOST: 'unix:///run/podman/podman.sock' })).toEqual({ socketPath: '/run/podman/podman.sock' });
    expect(dockerOptions({ DOCKER_HOST: 'tcp://10.0.0.2:2375' })).toEqual({ host: '10.0.0.2', port: 2375, protocol: 'http' });
    expect(dockerOptions({}, (p) => p === DEFAULT_SOCKET)).toEqual({ socketPath: DEFAULT_SOCKET });
    expect(dockerOptions({}, () => false)).toBeNull();
    expect(() => dockerOptions({ DOCKER_HOST: 'ssh://me@host' })).toThrow(/DOCKER_HOST/);
  });

  it('configures ec2 only with region, AMI, type, subnet and security groups all set', () => {
    const log: string[] = [];
    const quiet = (m: string) => log.push(m);
    expect(Object.keys(backendsFromEnv({ ...EC2, PROVISIONER_DOCKER: 'off' }, quiet))).toEqual(['ec2']);
    expect(Object.keys(backendsFromEnv({ ...EC2, AWS_REGION: 'eu-west-3', EC2_REGION: '', PROVISIONER_DOCKER: 'off' }, quiet))).toEqual(['ec2']);
    expect(Object.keys(backendsFromEnv({ ...EC2, EC2_SUBNET_ID: '', PROVISIONER_DOCKER: 'off' }, quiet))).toEqual([]);
    expect(log).toHaveLength(1);
    expect(Object.keys(backendsFromEnv({ DOCKER_HOST: 'unix:///tmp/x.sock' }, quiet))).toEqual(['docker']);
  });
});
