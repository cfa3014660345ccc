// The provisioner-agent in-process, on a loopback port, driving a Docker double. For tests here
// and for the Worker's integration-test global setup. Plain Node 22 can import this file.
import type { AddressInfo } from 'node:net';
import Docker from 'dockerode';
import type { ProvisionerBackend } from '../../../src/provisioning/protocol.ts';
import type { Backend } from '../../src/backend.ts';
import { createDockerBackend } from '../../src/docker/driver.ts';
import type { Logger } from '../../src/server.ts';
import { createProvisionerServer } from '../../src/server.ts';
import type { DockerDouble } from './docker-double.ts';

export interface TestProvisioner {
  /** `http://127.0.0.1:<port>`: the Worker's PROVISIONER_URL. */
  url: string;
  port: number;
  /** Every line the agent logged (raw daemon errors included), for assertions. */
  logs: Array<{ message: string; fields?: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startTestProvisioner(options: {
  secret: string;
  /** A Docker double (startDockerDouble) or any dockerode options; null: no docker backend. */
  docker: DockerDouble | { dockerOptions: Docker.DockerOptions } | null;
  /** AGENT_IMAGE for the docker backend (default `molecule-test/{runtime}:latest`). */
  imageTemplate?: string;
  port?: number;
  /** Further backends next to docker (e.g. an ec2 stand-in for the Worker's tests of its ec2 branch). */
  backends?: Partial<Record<ProvisionerBackend, Backend>>;
  /** Also print log lines to stderr. */
  echoLogs?: boolean;
}): Promise<TestProvisioner> {
  const logs: TestProvisioner['logs'] = [];
  const log: Logger = (message, fields) => {
    logs.push({ message, fields });
    if (options.echoLogs) console.error('[provisioner-agent]', message, fields ?? '');
  };
  const backends = {
    ...options.backends,
    ...(options.docker
      ? {
          docker: createDockerBackend({
            docker: new Docker(options.docker.dockerOptions),
            imageTemplate: options.imageTemplate ?? 'molecule-test/{runtime}:latest',
            removalWaitMs: 2_000,
          }),
        }
      : {}),
  };
  const server = createProvisionerServer({ secret: options.secret, backends, log });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    logs,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
