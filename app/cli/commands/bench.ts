// `quip bench <what>`: benchmark commands. Each prints its figures beside the comparison measured in
// the same run, as a readable table or as JSON with --json. Subcommands register themselves here.
import type { Command } from 'commander';

import { registerAblationsBench } from '../../bench/ablations.js';
import { registerChatBench } from '../../bench/chat.js';
import { registerDecodeBench } from '../../bench/decode.js';
import { registerFinetuneBench } from '../../bench/finetune.js';
import { registerEngineBench } from '../../bench/engine.js';
import { registerEstimateBench } from '../../bench/estimate.js';
import { registerKernelsBench } from '../../bench/kernels.js';
import { registerDecodePeerBench } from '../../bench/llamacpp.js';
import { registerQualityBench } from '../../bench/quality.js';
import { registerFuzzBench } from '../../bench/fuzz.js';
import { registerLayerErrors } from '../../bench/layer-errors.js';
import { registerQualitySweep } from '../../bench/quality-sweep.js';
import { registerQuantizeBench } from '../../bench/quantize.js';
import { registerHubBench } from '../../bench/hub.js';

const benches: Array<(bench: Command) => void> = [registerEngineBench, registerDecodeBench, registerQuantizeBench, registerKernelsBench, registerHubBench, registerQualityBench, registerQualitySweep, registerLayerErrors, registerDecodePeerBench, registerFinetuneBench, registerAblationsBench, registerChatBench, registerFuzzBench, registerEstimateBench];

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('Benchmarks: each figure printed beside its comparison, measured in the same run');
  for (const register of benches) register(bench);
}
