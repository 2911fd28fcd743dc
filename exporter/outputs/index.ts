/** p2v-export's outputs: one module per destination, one contract (types.ts), one chooser. */
export type { ExportOutput, OutputKind, OvaSink } from './types.js';
export { chooseOutput, type OutputChoice } from './choose.js';
export { stdoutOutput, streamOutput } from './stdout.js';
export { fileOutput, type FileOutputOptions } from './file.js';
export { sshOutput } from './ssh.js';
export { directOutput, directReceiverCommand, DEFAULT_TARGET_DEVICE } from './direct.js';
export { createExclusive, fileError } from './exclusive-file.js';
