// Ctrl-C in a long command: the first stops the work at its next check (the command then reports
// what it kept), the second exits at once.
import { cancelFlag } from '../engine/native.js';

/** A cancel flag that Ctrl-C sets (a second Ctrl-C exits at once); call the returned function when done. */
export function cancelOnSigint(): { cancel: Int32Array; done: () => void } {
  const cancel = cancelFlag();
  const onSigint = () => {
    if (cancel[0]) process.exit(130);
    cancel[0] = 1;
    process.stderr.write('\nquip: stopping (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);
  return { cancel, done: () => process.off('SIGINT', onSigint) };
}
