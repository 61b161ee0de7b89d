// Every request and event between the UI and the studio, declared once. The renderer client, the
// Electron preload allow-list, the main-process IPC handlers and the WebSocket server are all derived
// from these two tables (contract.test.ts fails when one of them misses a channel).
// Adding a channel: add a row here, then a handler in app/services/studio/index.ts (the compiler asks for it).
import { z } from 'zod';

import { MAX_PATH_CHARS, MAX_SHORT_CHARS, SafeName } from './limits.js';
import { LoadedModelInfo } from './loaded-models.js';
import { ApiCors, ApiHost, ApiPort, ApiRequestLog, ApiSetInput, ApiStatus, ChatCount, ChatCountInput, LoadedModels, ModelDirInput } from './local-api.js';
import { ModelInspection } from './model.js';
import {
  ChatId, ChatRecord, ChatSendInput, ChatToken, EstimateInput, RevealResult, RunDetail, RunEstimate, RunEvent, RunId, RunSummary, StartRunInput, StreamId,
} from './runs.js';
import { TokenKldInput, TokenKldResult } from './token-kld.js';

/** Requests that take no input accept nothing or an empty object. */
const NoInput = z.object({}).strict().optional();
const Ok = z.object({ ok: z.literal(true) });

export const Face = z.enum(['electron', 'browser']);
export type Face = z.infer<typeof Face>;

/** The fast-path kernels the native core runs on a CPU (native cpu_features().simd()); scalar: the
 * portable references. */
export const SimdPath = z.enum(['avx512', 'avx2', 'neon', 'scalar']);
export type SimdPath = z.infer<typeof SimdPath>;

export const AppInfo = z.object({
  version: z.string(),
  face: Face,
  /** e.g. "AMD EPYC 7B13 (AVX2, FMA)". */
  cpu: z.string(),
  simd: SimdPath,
  /** Hardware threads the engine will use by default. */
  threads: z.number().int().positive(),
  studioHome: z.string(),
  hubEndpoint: z.string(),
  /** Where downloads go (the standard Hugging Face cache). */
  hubCache: z.string(),
  /** The sample model shipped with the studio (stories260k), null when it is missing. */
  sampleModel: z.string().nullable(),
});
export type AppInfo = z.infer<typeof AppInfo>;

export const PickFolderResult = z.object({
  path: z.string().nullable(),
  /** false in the browser face: there is no native dialog, the UI shows a path field instead. */
  supported: z.boolean(),
});
export type PickFolderResult = z.infer<typeof PickFolderResult>;

/** What a file browser or a native dialog is choosing: a model folder, a .gguf file or a text file. */
export const FileChoice = z.enum(['model-folder', 'gguf', 'text']);
export type FileChoice = z.infer<typeof FileChoice>;

export const FilesListInput = z.object({
  /** A folder under one of the roots; left out: the home folder. */
  dir: z.string().trim().max(MAX_PATH_CHARS).optional(),
  /** Which files to show besides folders: .gguf files ('model-folder' and 'gguf') or text files. */
  choose: FileChoice.default('model-folder'),
});

export const FileEntry = z.object({
  name: z.string(),
  path: z.string(),
  /** 'model-folder': a folder holding config.json and safetensors weights. */
  kind: z.enum(['folder', 'model-folder', 'gguf', 'text']),
  /** Bytes of a file; null for a folder. */
  size: z.number().nullable(),
});
export type FileEntry = z.infer<typeof FileEntry>;

export const FileRoot = z.object({ path: z.string(), label: z.string() });
export type FileRoot = z.infer<typeof FileRoot>;

export const FilesListResult = z.object({
  /** The folder listed (symlinks resolved). */
  dir: z.string(),
  /** Its parent, null at a root. */
  parent: z.string().nullable(),
  /** Where browsing may go: the home folder, the studio home, the Hugging Face cache, mounted volumes. */
  roots: z.array(FileRoot),
  entries: z.array(FileEntry),
  /** More entries than a listing holds: the first ones are shown. */
  truncated: z.boolean(),
});
export type FilesListResult = z.infer<typeof FilesListResult>;

export const PickFileInput = z.object({ choose: FileChoice });

export const InspectInput = z.object({
  /** A local model folder, or a Hugging Face repo id ("owner/name") already downloaded or to resolve. */
  source: z.string().trim().min(1, 'Give a model folder or a Hugging Face repo id.').max(MAX_PATH_CHARS),
  revision: z.string().min(1).max(MAX_SHORT_CHARS).optional(),
});
export type InspectInput = z.infer<typeof InspectInput>;

export const ImportGgufInput = z.object({
  /** A .gguf file on the studio's machine. */
  file: z.string().trim().min(1, 'Give the path of a .gguf file.').max(MAX_PATH_CHARS),
});
export type ImportGgufInput = z.infer<typeof ImportGgufInput>;

export const ImportGgufResult = z.object({
  /** The imported folder (<studio home>/models/<name>) as the inspector sees it. */
  inspection: ModelInspection,
  /** The GGUF held quantized tensors: the 16-bit weights written carry that error. */
  lossy: z.boolean(),
  /** What to tell people about the source (the lossy note for a quantized GGUF). */
  note: z.string(),
  warnings: z.array(z.string()),
  seconds: z.number(),
});
export type ImportGgufResult = z.infer<typeof ImportGgufResult>;

export const RecentModel = z.object({
  path: z.string(),
  repoId: z.string().nullable(),
  name: z.string(),
  family: z.string().nullable(),
  /** Total parameter count. */
  params: z.number().int().nullable(),
  /** ISO 8601 time it was last opened. */
  openedAt: z.string(),
});
export type RecentModel = z.infer<typeof RecentModel>;

export const HubModel = z.object({
  id: z.string(), // "owner/name"
  downloads: z.number().int().nullable(),
  likes: z.number().int().nullable(),
  /** ISO 8601. */
  updatedAt: z.string().nullable(),
  pipelineTag: z.string().nullable(),
  gated: z.boolean(),
  private: z.boolean(),
  /** Present in the local Hugging Face cache already. */
  cached: z.boolean(),
});
export type HubModel = z.infer<typeof HubModel>;

export const HubSearchInput = z.object({
  query: z.string().trim().max(200),
  limit: z.number().int().min(1).max(100).default(20),
});

// The hub's own rule (huggingface_hub validate_repo_id): each part starts and ends with a letter,
// digit or "_", at most 96 characters, no "--" or ".." inside; so neither part can be "." or "..".
const RepoId = z
  .string()
  .trim()
  .regex(/^[\w.-]+\/[\w.-]+$/, 'A Hugging Face repo id looks like "owner/name".')
  .refine(
    (id) => id.split('/').every((part) => /^\w(?:[\w.-]{0,94}\w)?$/.test(part) && !part.includes('--') && !part.includes('..')),
    'A Hugging Face repo id looks like "owner/name": each part starts and ends with a letter or digit, has no "--" or "..", and is at most 96 characters.',
  );

export const HubDownloadInput = z.object({ repoId: RepoId, revision: z.string().min(1).max(MAX_SHORT_CHARS).optional() });
export const DownloadId = z.object({ downloadId: SafeName('download id') });

/** Kept in settings.json in the studio home. */
const Threads = z.number().int().min(1).max(1024).nullable();
const IdleUnloadMinutes = z.number().int().min(0).max(7 * 24 * 60);
const MemoryBudget = z.number().int().min(64 * 1024 * 1024).nullable();
/** The local server's default port (beside Ollama's 11434). */
export const DEFAULT_API_PORT = 11435;
export const Settings = z.object({
  /** Threads for engine work; null = every hardware thread. */
  threads: Threads.default(null),
  /** A loaded model unused this long unloads itself; 0: never. */
  idleUnloadMinutes: IdleUnloadMinutes.default(15),
  /** Resident memory the loaded models may use together; null: half the machine's RAM. */
  memoryBudgetBytes: MemoryBudget.default(null),
  /** The local server's key (random per studio home, made on first use; api.regenerateKey replaces it). */
  apiKey: z.string().min(16).max(MAX_SHORT_CHARS).nullable().default(null),
  apiPort: ApiPort.default(DEFAULT_API_PORT),
  /** 127.0.0.1 unless the person chose to let other machines in. */
  apiHost: ApiHost.default('127.0.0.1'),
  /** The origin browsers may call the local server from; null: no CORS. */
  apiCors: ApiCors.nullable().default(null),
});
export type Settings = z.infer<typeof Settings>;
/** A change to some settings; absent fields stay as they are (the API key changes only by api.regenerateKey). */
export const SettingsPatch = z
  .object({
    threads: Threads.optional(),
    idleUnloadMinutes: IdleUnloadMinutes.optional(),
    memoryBudgetBytes: MemoryBudget.optional(),
    apiPort: ApiPort.optional(),
    apiHost: ApiHost.optional(),
    apiCors: ApiCors.nullable().optional(),
  })
  .strict();

/** queued: waiting for a free job process (at most one per core run at once). */
export const JobState = z.enum(['queued', 'running', 'done', 'error', 'cancelled']);
export type JobState = z.infer<typeof JobState>;

export const JobInfo = z.object({
  jobId: z.string(),
  kind: z.string(),
  /** A short line for people, e.g. "Inspect stories260k". */
  label: z.string(),
  state: JobState,
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  error: z.string().nullable(),
});
export type JobInfo = z.infer<typeof JobInfo>;

export const JobId = z.object({ jobId: z.string().min(1).max(MAX_SHORT_CHARS) });

// ---- events -------------------------------------------------------------------------------------

export const DownloadState = z.enum(['running', 'done', 'cancelled', 'error']);

export const DownloadProgress = z.object({
  downloadId: z.string(),
  repoId: z.string(),
  /** The file being fetched now (the last one when done). */
  file: z.string(),
  bytesDone: z.number(),
  bytesTotal: z.number(),
  speedBytesPerSec: z.number(),
  /** null while the speed is not yet known. */
  etaSeconds: z.number().nullable(),
  state: DownloadState,
  error: z.string().optional(),
  /** The snapshot folder, once done. */
  dir: z.string().optional(),
});
export type DownloadProgress = z.infer<typeof DownloadProgress>;

/** How far a models.importGguf call is: when its job starts, then once per tensor written. */
export const ImportProgress = z.object({
  /** The import's job (jobs.cancel stops it). */
  jobId: z.string(),
  /** The .gguf file being imported. */
  file: z.string(),
  /** Tensors written of all, 0..1; null until the job knows. */
  fraction: z.number().min(0).max(1).nullable(),
  message: z.string(),
});
export type ImportProgress = z.infer<typeof ImportProgress>;

// ---- the tables ---------------------------------------------------------------------------------

interface RequestSpec<I extends z.ZodType, O extends z.ZodType> {
  input: I;
  output: O;
  /** One line for people reading the contract. */
  doc: string;
}
function request<I extends z.ZodType, O extends z.ZodType>(input: I, output: O, doc: string): RequestSpec<I, O> {
  return { input, output, doc };
}

export const requests = {
  'app.info': request(NoInput, AppInfo, 'Version, face, CPU, threads, studio home and hub endpoint.'),
  'models.pickFolder': request(NoInput, PickFolderResult, 'Native folder dialog (desktop); {supported:false} in the browser.'),
  'files.pick': request(PickFileInput, PickFolderResult, 'Native dialog for a model folder, a .gguf file or a text file (desktop); {supported:false} in the browser, which uses files.list.'),
  'files.list': request(FilesListInput, FilesListResult, "The browser face's file browser: folders (model folders marked) and .gguf or text files in a folder under the home folder or a mounted volume; refuses anything outside them."),
  'models.inspect': request(InspectInput, ModelInspection, 'Inspect a local folder or a hub id, in the job process; adds it to recent models.'),
  'models.importGguf': request(ImportGgufInput, ImportGgufResult, 'Import a GGUF file into <studio home>/models in the job process (progress as models.importProgress); adds it to recent models.'),
  'models.recent': request(NoInput, z.array(RecentModel), 'Recently opened models, newest first.'),
  'models.forget': request(z.object({ path: z.string().min(1).max(MAX_PATH_CHARS) }), Ok, 'Remove a model from the recent list (files stay).'),
  'models.loaded': request(NoInput, LoadedModels, 'The loaded models (one long-lived job process each) with their resident memory, the memory budget and the idle time.'),
  'models.load': request(ModelDirInput, LoadedModelInfo, 'Load a model (if it is not loaded) and wait until it serves.'),
  'models.unload': request(ModelDirInput, z.object({ unloaded: z.boolean() }), 'Unload a model: its process ends; what it was answering stops.'),
  'hub.search': request(HubSearchInput, z.array(HubModel), 'Search text-generation models on the Hugging Face Hub.'),
  'hub.download': request(HubDownloadInput, DownloadId, 'Start (or resume) downloading a repo into the HF cache; progress comes as download.progress.'),
  'hub.cancelDownload': request(DownloadId, Ok, 'Stop a download; what was fetched stays for resuming.'),
  'settings.get': request(NoInput, Settings, 'The studio settings.'),
  'settings.update': request(SettingsPatch, Settings, 'Change some settings; returns all of them.'),
  'jobs.list': request(NoInput, z.array(JobInfo), 'Jobs of this session, newest first.'),
  'jobs.cancel': request(JobId, z.object({ cancelled: z.boolean() }), 'Cancel a queued or running job (a queued one never starts; a running one: cooperative, then forced).'),
  'runs.estimate': request(EstimateInput, RunEstimate, 'Resolved settings with the time, memory and output size a run will take.'),
  'runs.start': request(StartRunInput, RunSummary, 'Queue a quantization run (one runs at a time); events come as run.event.'),
  'runs.list': request(NoInput, z.array(RunSummary), 'Runs in the studio home (studio and CLI), newest first.'),
  'runs.get': request(RunId, RunDetail, 'One run with its per-layer metrics, fine-tuning losses and log.'),
  'runs.cancel': request(RunId, RunSummary, 'Cancel a queued or running run; a running one keeps its checkpoint for resuming.'),
  'runs.resume': request(RunId, RunSummary, 'Queue an interrupted or cancelled run again; it continues after its last finished block.'),
  'runs.delete': request(RunId, Ok, 'Delete a run with its files (finished folder, checkpoint, record).'),
  'runs.reveal': request(RunId, RevealResult, 'Show the run folder in the file manager (desktop); the browser face returns the path.'),
  'compare.tokenKld': request(TokenKldInput, TokenKldResult, "Token by token: each run's next-token KL divergence against its 16-bit base and both models' top-5 tokens at every token of a text, per base model, in the job process."),
  'chat.send': request(ChatSendInput, StreamId, 'Generate a reply in the job process; text streams as chat.token events.'),
  'chat.stop': request(StreamId, z.object({ stopped: z.boolean() }), 'Stop a streaming reply (what was generated stays).'),
  'chat.count': request(ChatCountInput, ChatCount, "The prompt's token count against the model's context, before sending (loads the model)."),
  'chats.list': request(NoInput, z.array(ChatRecord), 'Saved chats, newest first.'),
  'chats.save': request(ChatRecord, ChatRecord, 'Save (create or replace) a chat in the studio home.'),
  'chats.delete': request(ChatId, Ok, 'Delete a saved chat.'),
  'api.status': request(NoInput, ApiStatus, 'The OpenAI-compatible local server: running or not, its URL, key and latest requests.'),
  'api.set': request(ApiSetInput, ApiStatus, 'Start (with the given port, host, CORS origin, kept as settings) or stop the local server.'),
  'api.regenerateKey': request(NoInput, ApiStatus, 'Replace the local server key (a running server takes the new one at once).'),
} as const;

export const events = {
  'download.progress': DownloadProgress,
  'models.importProgress': ImportProgress,
  'run.event': RunEvent,
  'chat.token': ChatToken,
  /** The loaded set or a loaded model's state changed. */
  'models.loadedChanged': LoadedModels,
  /** The local server started, stopped or changed key. */
  'api.statusChanged': ApiStatus,
  /** One request the local server answered. */
  'api.request': ApiRequestLog,
} as const;

export type Requests = typeof requests;
export type RequestName = keyof Requests;
export type EventName = keyof typeof events;
/** What a caller passes (defaults not yet applied). */
export type RequestInput<K extends RequestName> = z.input<Requests[K]['input']>;
/** What a handler receives (after zod parsing). */
export type ParsedInput<K extends RequestName> = z.output<Requests[K]['input']>;
export type RequestOutput<K extends RequestName> = z.output<Requests[K]['output']>;
export type EventPayload<E extends EventName> = z.output<(typeof events)[E]>;

export const requestNames = Object.keys(requests) as RequestName[];
export const eventNames = Object.keys(events) as EventName[];
