#!/usr/bin/env node
// Installed entry point: the compiled CLI in dist/ (npm run build), linked into one file when built so.
import { runCli } from './entry.js';
await runCli('p2v-export', 'exporter/cli.js');
