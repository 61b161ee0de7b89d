// A run's perplexity as every screen shows it: the figure with its +- (one standard error of the
// mean NLL over windows), what it was measured on (text, window count and length), and, when the run
// calibrated on that same text, a note that says so. The words come from app/domain (evaluation.ts),
// the same as `quip compare` and `quip quantize` print.
import type { RunSummary } from '../../../../app/contract/index';
import '../../styles/files.css';
import { CALIBRATED_ON_TEXT_NOTE, describePerplexity, formatPerplexity, formatPerplexityChange } from '../../../../app/domain/quantize/index';

type Run = Pick<RunSummary, 'perplexity' | 'perplexityFull' | 'perplexityInfo'>;

/** "193.3 ± 3.1" (a table cell or a stat's value); the title says what it was measured on. */
export function PerplexityValue({ run }: { run: Run }) {
  if (run.perplexity === null) return <>—</>;
  const info = run.perplexityInfo ?? null;
  return (
    <span data-testid="perplexity-value" title={info ? describePerplexity(info) : undefined}>
      {formatPerplexity(run.perplexity, info?.stdErr)}
      {info?.calibratedOnText && (
        <span className="badge badge-warn perplexity-calibrated" title={CALIBRATED_ON_TEXT_NOTE} data-testid="calibrated-on-text">
          calibrated on this text
        </span>
      )}
    </span>
  );
}

/** The line under the figure: the text and windows, then full precision and the change against it. */
export function perplexityHint(run: Run): string | undefined {
  const info = run.perplexityInfo ?? null;
  const parts: string[] = [];
  if (info) parts.push(describePerplexity({ ...info, calibratedOnText: false }));
  if (run.perplexity !== null && run.perplexityFull !== null) {
    parts.push(`full precision ${formatPerplexity(run.perplexityFull, info?.fullStdErr)} (${formatPerplexityChange(run.perplexity, run.perplexityFull, info?.ratioStdErr)} on the same windows)`);
  }
  return parts.length ? parts.join(' · ') : undefined;
}
