/**
 * A Debian mirror inside the Ganeti sandbox's network namespace, which has no
 * route out (shared/README.md): `http://BIND_IP:PORT/PATH` answers with
 * `UPSTREAM/PATH`. socat listens in the namespace and hands each connection
 * to an HTTP server of this process on a unix socket (a path, reachable
 * across namespaces), which fetches from the real mirror. What a site with a
 * local mirror or proxy gives its nodes; `gnt-instance add -O mirror=` then
 * points p2v-target's debootstrap at it.
 *
 *   const m = await forwardMirror({ netns: 'gnt', bindIp: '198.51.100.1', port: 8766, dir });
 *   m.url   // http://198.51.100.1:8766
 *   await m.stop();
 */
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa, type ResultPromise } from 'execa';

export interface MirrorForward {
  url: string;
  stop(): Promise<void>;
}

export async function forwardMirror(opts: {
  netns: string;
  bindIp: string;
  port: number;
  /** Folder for the unix socket. */
  dir: string;
  upstream?: string;
}): Promise<MirrorForward> {
  const upstream = (opts.upstream ?? process.env.P2V_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian').replace(
    /\/$/,
    '',
  );
  const sock = join(opts.dir, 'mirror.sock');
  const server = createServer((req, res) => {
    void (async () => {
      try {
        // identity: the length passed on must be that of the bytes passed on.
        const r = await fetch(upstream + (req.url ?? '/'), {
          method: req.method === 'HEAD' ? 'HEAD' : 'GET',
          headers: { 'accept-encoding': 'identity' },
        });
        const headers: Record<string, string> = {};
        for (const h of ['content-type', 'content-length', 'last-modified']) {
          const v = r.headers.get(h);
          if (v) headers[h] = v;
        }
        res.writeHead(r.status, headers);
        if (r.body && req.method !== 'HEAD')
          await pipeline(Readable.fromWeb(r.body as import('node:stream/web').ReadableStream), res);
        else res.end();
      } catch (e) {
        if (!res.headersSent) res.writeHead(502);
        res.end(String(e));
      }
    })();
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(sock, () => ok());
  });
  // Started again if it ends before stop(): the mirror must outlive any one connection's trouble.
  let stopped = false;
  let socat: ResultPromise;
  const launch = () => {
    socat = execa(
      'ip',
      [
        'netns',
        'exec',
        opts.netns,
        'socat',
        `TCP-LISTEN:${opts.port},bind=${opts.bindIp},fork,reuseaddr`,
        `UNIX-CONNECT:${sock}`,
      ],
      { reject: false, stdin: 'ignore', all: true },
    );
    void socat.then(() => {
      if (!stopped) setTimeout(launch, 500);
    });
  };
  launch();
  return {
    url: `http://${opts.bindIp}:${opts.port}`,
    stop: async () => {
      stopped = true;
      socat.kill('SIGTERM');
      await socat.catch(() => undefined);
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
