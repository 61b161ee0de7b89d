// Chat templates rendered under a budget. A template is a program from the model repository
// (@huggingface/jinja interprets it), so rendering one is bounded like running untrusted code:
//   time     evaluation steps are counted and the clock read every 1024 of them (plus V8's own
//            watchdog, vm `timeout`, for anything a step check cannot see);
//   memory   range() refuses more than maxItems numbers (the library's builds any list it is asked
//            for: range(1e9) is a fatal out-of-memory), every string and list a step yields is
//            checked against maxChars / maxItems, and the characters all steps yield are summed;
//   depth    nesting (macros calling themselves) stops at maxDepth levels;
//   Ctrl-C   SIGINT interrupts a render (vm `breakOnSigint`), which then fails as CANCELLED.
// Each limit gives a UserError that names the template and the limit. The globals match
// @huggingface/jinja's setupGlobals (which it does not export; its Template.render refuses to let
// a render's variables replace them), with range bounded.
import vm from 'node:vm';

import { Environment, Interpreter, Template } from '@huggingface/jinja';

import { UserError } from '../../util/errors.js';

export interface TemplateLimits {
  /** Wall-clock seconds for one render. */
  seconds: number;
  /** Evaluation steps (expressions and statements) for one render. */
  maxSteps: number;
  /** Nesting of evaluations (a macro call adds a few levels). */
  maxDepth: number;
  /** Characters in any one string, the output included, beyond the characters of the messages. */
  maxChars: number;
  /** Items in any one list (range() included). */
  maxItems: number;
}

export const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = {
  seconds: 2,
  maxSteps: 20_000_000,
  maxDepth: 500,
  maxChars: 1_000_000,
  maxItems: 1_000_000,
};

/** Characters all steps of one render may yield, as a multiple of the per-string bound. */
const PRODUCED_FACTOR = 16;

type Node = Parameters<Interpreter['evaluate']>[0];
type Value = ReturnType<Interpreter['evaluate']>;

/** Which limit a render ran into, in words ("took more than 2 s", ...). */
class OverBudget extends Error {}

class Budget {
  steps = 0;
  depth = 0;
  produced = 0;
  readonly deadline: number;
  readonly maxChars: number;
  readonly maxProduced: number;

  constructor(readonly limits: TemplateLimits, inputChars: number) {
    this.deadline = performance.now() + limits.seconds * 1000;
    // Messages may be long (a pasted text): the template may repeat them a few times.
    this.maxChars = limits.maxChars + 4 * inputChars;
    this.maxProduced = PRODUCED_FACTOR * this.maxChars;
  }

  step(): void {
    if (++this.steps % 1024 !== 0) return;
    if (this.steps > this.limits.maxSteps) throw new OverBudget(`took more than ${this.limits.maxSteps.toLocaleString('en-US')} evaluation steps`);
    if (performance.now() > this.deadline) throw new OverBudget(`took more than ${this.limits.seconds} s to render`);
  }

  check(v: Value): void {
    if (v.type === 'StringValue') {
      const n = (v.value as string).length;
      if (n > this.maxChars) throw new OverBudget(`produced a text of more than ${this.maxChars.toLocaleString('en-US')} characters`);
      this.produced += n;
      if (this.produced > this.maxProduced) throw new OverBudget(`produced more than ${this.maxProduced.toLocaleString('en-US')} characters in all`);
    } else if (v.type === 'ArrayValue' || v.type === 'TupleValue') {
      if ((v.value as unknown[]).length > this.limits.maxItems) throw new OverBudget(`built a list of more than ${this.limits.maxItems.toLocaleString('en-US')} items`);
    }
  }

  /** Python's range(stop) / range(start, stop[, step]), refusing more than maxItems numbers. */
  range = (...args: unknown[]): number[] => {
    if (args.length < 1 || args.length > 3 || !args.every((a) => typeof a === 'number' && Number.isFinite(a)))
      throw new Error(`range() takes one to three numbers, got (${args.map((a) => JSON.stringify(a)).join(', ')})`);
    const [start, stop, step = 1] = (args.length === 1 ? [0, args[0]] : args) as number[];
    if (step === 0) throw new Error('range() step must not be zero');
    const count = Math.max(0, Math.ceil((stop - start) / step));
    if (count > this.limits.maxItems) throw new OverBudget(`asked for range() of ${count.toLocaleString('en-US')} numbers (at most ${this.limits.maxItems.toLocaleString('en-US')})`);
    return Array.from({ length: count }, (_, i) => start + i * step);
  };
}

/** An interpreter that charges every evaluation to a budget. */
class BudgetedInterpreter extends Interpreter {
  constructor(env: Environment, private readonly budget: Budget) {
    super(env);
  }

  override evaluate(node: Node, env: Environment): Value {
    const b = this.budget;
    b.step();
    if (++b.depth > b.limits.maxDepth) throw new OverBudget(`nests deeper than ${b.limits.maxDepth} levels (a macro that calls itself without end?)`);
    try {
      const v = super.evaluate(node, env);
      b.check(v);
      return v;
    } finally {
      b.depth--;
    }
  }
}

// @huggingface/jinja's strftime_now: the tokens it knows, local time.
function strftimeNow(format: unknown): string {
  if (typeof format !== 'string') throw new Error('strftime_now() takes a format string');
  const d = new Date();
  const pad2 = (n: number) => String(n).padStart(2, '0');
  return format.replace(/%[YmdbBHM%]/g, (t) => {
    switch (t) {
      case '%Y': return String(d.getFullYear());
      case '%m': return pad2(d.getMonth() + 1);
      case '%d': return pad2(d.getDate());
      case '%b': return new Intl.DateTimeFormat(undefined, { month: 'short' }).format(d);
      case '%B': return new Intl.DateTimeFormat(undefined, { month: 'long' }).format(d);
      case '%H': return pad2(d.getHours());
      case '%M': return pad2(d.getMinutes());
      default: return '%';
    }
  });
}

/** Characters of the strings in a render's variables (the messages), which the budget allows for. */
function textSize(v: unknown, depth = 0): number {
  if (typeof v === 'string') return v.length;
  if (depth > 8 || !v || typeof v !== 'object') return 0;
  let n = 0;
  for (const x of Array.isArray(v) ? v : Object.values(v)) n += textSize(x, depth + 1);
  return n;
}

const RUN = new vm.Script('render()', { filename: 'chat-template' });
const runContext = vm.createContext({ render: (): string => '' });

export interface CompiledTemplate {
  /** Renders with `variables` (messages, add_generation_prompt, bos_token, ...) under the limits. */
  render(variables: Record<string, unknown>): string;
}

/**
 * Parses a chat template. `what` names it in every error ("The chat template of <what>"), `file`
 * is where it is stored. Throws a UserError (BAD_TOKENIZER) when it does not parse.
 */
export function compileChatTemplate(source: string, what: string, file: string, limits: Partial<TemplateLimits> = {}): CompiledTemplate {
  const lim: TemplateLimits = { ...DEFAULT_TEMPLATE_LIMITS, ...limits };
  const subject = `The chat template of ${what} (${file})`;
  let template: Template;
  try {
    template = new Template(source);
  } catch (err) {
    throw new UserError(`${subject} cannot be parsed: ${(err as Error).message}. Fix the template, or use the model without its chat template.`, 'BAD_TOKENIZER');
  }
  return {
    render(variables) {
      const budget = new Budget(lim, textSize(variables));
      const env = new Environment();
      for (const [k, v] of Object.entries({ false: false, true: true, none: null, False: false, True: true, None: null })) env.set(k, v);
      env.set('raise_exception', (message: unknown) => {
        throw new Error(String(message));
      });
      env.set('range', budget.range);
      env.set('strftime_now', strftimeNow);
      for (const [k, v] of Object.entries(variables)) env.set(k, v);
      const interpreter = new BudgetedInterpreter(env, budget);
      runContext.render = () => interpreter.run(template.parsed).value as string;
      try {
        // V8's watchdog stops the render at the deadline wherever it is (a loop over a long list
        // takes few steps); Ctrl-C stops it at once.
        return RUN.runInContext(runContext, { timeout: Math.max(1, Math.round(lim.seconds * 1000)), breakOnSigint: true }) as string;
      } catch (err) {
        const message = (err as Error)?.message ?? String(err);
        if (err instanceof OverBudget) throw new UserError(`${subject} ${message}; the studio stops templates there. Fix the template, or use the model without its chat template.`, 'TEMPLATE_LIMIT');
        if (/^Script execution timed out/.test(message))
          throw new UserError(`${subject} took more than ${lim.seconds} s to render; the studio stops templates there. Fix the template, or use the model without its chat template.`, 'TEMPLATE_LIMIT');
        if (/^Script execution (was )?interrupted/.test(message)) throw new UserError(`Rendering the chat template of ${what} was interrupted (Ctrl-C).`, 'CANCELLED');
        if (err instanceof RangeError && /Invalid (string|array) length/.test(message))
          throw new UserError(`${subject} built a text or list longer than JavaScript allows; the studio stops templates there. Fix the template, or use the model without its chat template.`, 'TEMPLATE_LIMIT');
        if (err instanceof RangeError && /call stack/.test(message))
          throw new UserError(`${subject} nests too deep to render (a macro that calls itself without end?). Fix the template, or use the model without its chat template.`, 'TEMPLATE_LIMIT');
        throw new UserError(`${subject} failed to render: ${message}.`, 'BAD_TOKENIZER');
      } finally {
        runContext.render = () => '';
      }
    },
  };
}
