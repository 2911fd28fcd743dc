export * from './errors.js';
export * from './exit-actions.js';
export * from './run.js';
export * from './log.js';
export * from './progress.js';
export * from './units.js';
