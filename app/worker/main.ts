// Entry of the job process (dist/worker.mjs): child_process.fork in the server and CLI faces, Electron
// utilityProcess in the desktop face. Heavy and native work runs here, so a crash takes only this
// process down and the studio reports it.
import { jobKinds } from './kinds.js';
import { runWorker } from './runtime.js';

runWorker(jobKinds);
