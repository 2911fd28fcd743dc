export * from './definition.js';
export * from './install.js';
