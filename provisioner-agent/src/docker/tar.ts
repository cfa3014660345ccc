import tar from 'tar-stream';

export interface ArchiveFile {
  name: string;
  content: string;
  mode: number;
  uid: number;
  gid: number;
}

/** A tar archive (for the Engine's PUT /containers/{id}/archive) holding `files`, in memory. */
export function tarArchive(files: ArchiveFile[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('data', (chunk: Buffer) => chunks.push(chunk));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const file of files) {
    pack.entry({ name: file.name, mode: file.mode, uid: file.uid, gid: file.gid, mtime: new Date(0) }, file.content);
  }
  pack.finalize();
  return done;
}
