export { NbdClient, MAX_REQUEST } from './client.js';
export type { NbdExtent, NbdTarget, NbdConnectOptions, NbdBlockSizes, NbdExportInfo } from './types.js';
