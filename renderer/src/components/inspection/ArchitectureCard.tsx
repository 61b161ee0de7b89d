import type { ModelInspection } from '../../../../app/contract/model';
import { formatCount } from '../../format';
import { Card, Stat } from '../ui';

export function ArchitectureCard({ inspection }: { inspection: ModelInspection }) {
  const a = inspection.architecture;
  const gqa = a.numKeyValueHeads > 0 && a.numKeyValueHeads !== a.numHeads ? `${a.numHeads / a.numKeyValueHeads} query heads per key/value head` : undefined;
  const rope = a.ropeScaling ? `θ ${formatCount(a.ropeTheta)}, ${a.ropeScaling.type} ×${a.ropeScaling.factor}` : `θ ${formatCount(a.ropeTheta)}`;
  return (
    <Card title="Architecture" testId="architecture-card">
      <dl className="stat-grid">
        <Stat label="Family" value={a.family} hint={a.modelType} />
        <Stat label="Hidden size" value={formatCount(a.hiddenSize)} />
        <Stat label="MLP size" value={formatCount(a.intermediateSize)} />
        <Stat label="Layers" value={formatCount(a.numLayers)} />
        <Stat label="Attention heads" value={formatCount(a.numHeads)} hint={`head dim ${a.headDim}`} />
        <Stat label="Key/value heads" value={formatCount(a.numKeyValueHeads)} hint={gqa} />
        <Stat label="Vocabulary" value={formatCount(a.vocabSize)} />
        <Stat label="Context" value={`${formatCount(a.contextLength)} tokens`} />
        <Stat label="RoPE" value={rope} />
        <Stat label="RMSNorm eps" value={String(a.rmsNormEps)} />
        <Stat label="Tied embeddings" value={a.tiedEmbeddings ? 'yes' : 'no'} />
        <Stat label="q/k/v bias" value={a.attentionBias ? 'yes' : 'no'} hint={a.torchDtype ?? undefined} />
      </dl>
    </Card>
  );
}
