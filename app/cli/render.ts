// Human-readable rendering of the job's events for a terminal: the settings with their estimates, a
// progress line, one table row per finished layer, a line per fine-tuned block and end-to-end epoch,
// warnings and the closing summary.
import { formatBytes, formatSeconds } from '../domain/format.js';
import { describePerplexity, formatPerplexity, formatPerplexityChange, type QuantizeEvent } from '../domain/quantize/index.js';

export interface Terminal {
  write(text: string): void;
  /** True when the output is a TTY (a live progress line can be redrawn). */
  isTTY: boolean;
}

const COLS = ['block', 'layer', 'shape', 'proxy loss', 'rel. error', 'seconds', 'cholesky'];
const WIDTH = [5, 10, 11, 11, 11, 8, 9];

function row(cells: string[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(WIDTH[i]) : c.padStart(WIDTH[i]))).join('  ');
}

function bar(frac: number, width = 24): string {
  const full = Math.round(Math.max(0, Math.min(1, frac)) * width);
  return '[' + '#'.repeat(full) + '.'.repeat(width - full) + ']';
}

const GROUP_LABEL = { qkv: 'q/k/v', o: 'o', gateUp: 'gate/up' } as const;

/** Returns an event sink that prints progress to `term` and the closing summary (the result) to
 * `results` (default `term`): the CLI sends progress to stderr and results to stdout. */
export function terminalRenderer(term: Terminal, results: Pick<Terminal, 'write'> = term): (e: QuantizeEvent) => void {
  let progressShown = false;
  let headerShown = false;
  // The current block's tuned groups: their held-out loss before and after, printed with the block.
  let tuned: string[] = [];
  const clearProgress = () => {
    if (progressShown && term.isTTY) term.write('\r\x1b[2K');
    progressShown = false;
  };
  return (e) => {
    switch (e.type) {
      case 'estimate': {
        const s = e.settings;
        term.write(
          `Settings: ${s.bits}-bit ${s.codebook} (${s.family}), incoherence ${s.incoherence ? 'on' : 'off'}, LDLQ ${s.ldlq ? 'on' : 'off'}, ` +
            `sigma ${s.sigma}, rho ${s.rho}, tune iterations ${s.tuneIters}, seed ${s.seed}\n` +
            `Calibration: ${s.calibration.samples} sequences x ${s.calibration.ctx} tokens from ${e.calibrationSource ?? s.calibration.textFile ?? 'WikiText-2 validation'} = ${e.tokens} tokens\n` +
            `Estimate on ${e.threads} thread(s): ~${formatSeconds(e.seconds.total)} ` +
            `(${e.seconds.allocation ? `sensitivity for --target-bpw ${formatSeconds(e.seconds.allocation)}, ` : ''}calibration ${formatSeconds(e.seconds.calibration)}, Hessians ${formatSeconds(e.seconds.hessians)}, ` +
            `quantization ${formatSeconds(e.seconds.quantization)}, ${e.seconds.finetune > 0 ? `fine-tuning ${formatSeconds(e.seconds.finetune)}, ` : ''}` +
            `evaluation ${formatSeconds(e.seconds.evaluation)}), peak memory ~${formatBytes(e.peakBytes)}\n`,
        );
        break;
      }
      case 'phase':
        clearProgress();
        term.write(`== ${e.phase}: ${e.message}\n`);
        break;
      case 'resume':
        clearProgress();
        term.write(`Resuming from block ${e.fromBlock} (checkpoint ${e.checkpoint})\n`);
        break;
      case 'layer':
        clearProgress();
        if (!headerShown) {
          term.write(row(COLS) + '\n');
          headerShown = true;
        }
        term.write(
          row([
            String(e.block),
            e.name.split('.').pop() ?? e.name,
            `${e.shape[0]}x${e.shape[1]}`,
            e.proxyLoss.toExponential(3),
            e.frobeniusError.toExponential(3),
            e.seconds.toFixed(2),
            e.cholesky,
          ]) + '\n',
        );
        break;
      case 'eta':
        if (term.isTTY) {
          clearProgress();
          const eta = e.etaSeconds === null ? '' : `, ~${formatSeconds(e.etaSeconds)} left`;
          term.write(`${bar(e.layersDone / e.layersTotal)} ${e.layersDone}/${e.layersTotal} layers, ${formatSeconds(e.elapsedSeconds)}${eta}`);
          progressShown = true;
        }
        break;
      case 'block':
        break;
      case 'ft-group':
        tuned.push(`${GROUP_LABEL[e.group]}: ${e.initialHeldoutLoss.toExponential(2)} -> ${e.bestHeldoutLoss.toExponential(2)}`);
        break;
      case 'ft-block':
        clearProgress();
        term.write(`      fine-tuned block ${e.block}: held-out error ${e.heldoutError.toExponential(3)}${tuned.length ? ` (held-out loss of each tuning step, after ${tuned.join(', ')})` : ''}\n`);
        tuned = [];
        break;
      case 'ft-e2e-epoch':
        clearProgress();
        term.write(`end to end, epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}, held-out ${e.heldoutLoss.toFixed(4)}, ${formatSeconds(e.seconds)}\n`);
        break;
      case 'warning':
        clearProgress();
        term.write(`warning: ${e.layer ? e.layer + ': ' : ''}${e.message}\n`);
        break;
      case 'summary': {
        clearProgress();
        const info = e.perplexityInfo ?? null;
        const ppl =
          e.perplexity === null
            ? 'not measured'
            : formatPerplexity(e.perplexity, info?.stdErr) +
              (e.perplexityFull === null
                ? ''
                : ` (full precision ${formatPerplexity(e.perplexityFull, info?.fullStdErr)}; ${formatPerplexityChange(e.perplexity, e.perplexityFull, info?.ratioStdErr)} on the same windows)`) +
              (info ? ` on ${describePerplexity(info)}` : '');
        results.write(
          `Saved ${e.out}\n` +
            `  ${e.bits}-bit ${e.codebook}: ${e.bitsPerWeight.toFixed(3)} bits per linear weight, weights ${formatBytes(e.weightBytes ?? e.bytesOnDisk)} (.safetensors)\n` +
            `  proxy loss mean ${e.meanProxyLoss.toExponential(3)}, worst ${e.worstProxyLoss.toExponential(3)} over ${e.layers} layers\n` +
            `  perplexity ${ppl}\n` +
            `  ${formatSeconds(e.seconds)}, peak memory ${formatBytes(e.peakRssBytes)}\n`,
        );
        break;
      }
    }
  };
}
