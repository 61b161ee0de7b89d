import type { ModelInspection } from '../../../../app/contract/model';
import { formatCount } from '../../format';
import { Card, EmptyState, Stat } from '../ui';

export function TokenizerCard({ inspection }: { inspection: ModelInspection }) {
  const t = inspection.tokenizer;
  return (
    <Card title="Tokenizer" testId="tokenizer-card">
      {t ? (
        <dl className="stat-grid stat-grid-2">
          <Stat label="Kind" value={t.kind} />
          <Stat label="Vocabulary" value={formatCount(t.vocabSize)} />
          <Stat label="BOS" value={<code>{t.bosToken ?? '—'}</code>} hint={t.addBos ? 'added to prompts' : 'not added'} />
          <Stat label="EOS" value={<code>{t.eosToken ?? '—'}</code>} />
          <Stat label="Chat template" value={t.hasChatTemplate ? 'yes' : 'none'} />
        </dl>
      ) : (
        <EmptyState title="No tokenizer.json in this folder">Chat and perplexity need one; quantization does not.</EmptyState>
      )}
    </Card>
  );
}
