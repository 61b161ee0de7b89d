// What the renderer imports: the channel schemas and types, the StudioApi type, createStudioApi and
// the browser face's WebSocket client. Everything here runs in a browser (no Node imports).
export * from './channels.js';
export * from './model.js';
export * from './runs.js';
export * from './token-kld.js';
export * from './field-errors.js';
export * from './loaded-models.js';
export * from './local-api.js';
export { createStudioApi, SERVER_STOPPED, StudioError, type ConnectionState, type ConnectionWatch, type StudioApi, type StudioTransport, type Reply, type WireError } from './api.js';
export { connectStudio, createWebSocketTransport, SOCKET_PATH, type ConnectOptions } from './browser-client.js';
