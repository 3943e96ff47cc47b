// The official TypeScript SDK client doing the bench's work, for the ratios in
// bench/bench_mcp.sh. Usage:
//   node bench-client.mjs once              spawn server-everything, initialize, call echo, close
//   node bench-client.mjs session N         the same, then N more echo calls; prints the
//                                           mean per-call latency in microseconds
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const server = path.join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const [mode = 'once', nArg = '200'] = process.argv.slice(2);

const transport = new StdioClientTransport({
  command: process.env.BENCH_NODE ?? 'node', args: [server, 'stdio'], stderr: 'ignore',
});
const client = new Client({ name: 'bench-ts', version: '1.0.0' });
await client.connect(transport);
const first = await client.callTool({ name: 'echo', arguments: { message: 'hi' } });
if (first.content[0].text !== 'Echo: hi') throw new Error('bad echo');
if (mode === 'session') {
  const n = Number(nArg);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = await client.callTool({ name: 'echo', arguments: { message: `m${i}` } });
    if (r.content[0].text !== `Echo: m${i}`) throw new Error('bad echo');
  }
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  console.log(`per_call_us ${us.toFixed(1)}`);
} else {
  console.log(first.content[0].text);
}
await client.close();
