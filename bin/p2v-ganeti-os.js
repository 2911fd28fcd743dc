#!/usr/bin/env node
// Installed entry point: the compiled CLI lives in dist/ (npm run build).
import { main } from '../dist/ganeti-os/cli.js';
await main(process.argv);
