// Runs Amazon States Language definitions with the npm package
// aws-local-stepfunctions, on behalf of the Go package sfnlocal.
//
//   node runner.mjs <node_modules dir>
//
// Listens on a random 127.0.0.1 port, prints {"port":N} as its first line
// of stdout, and serves POST /execute:
//
//   request:  {definition, input, name, executionArn, stateMachineArn,
//              lambdaEndpoint, retryIntervalScale}
//   response: {status, output, error, cause, start, end, events:[{time,
//              type, state, error, cause, attempt, next, inputBytes,
//              outputBytes}]}
//
// Every Task calls its Lambda function through the Lambda Invoke API at
// lambdaEndpoint. Executions run concurrently. The process exits when its
// stdin closes (the Go side died or closed it).

// aws-local-stepfunctions 3.0.0 declares Node >= 22 and uses
// Promise.withResolvers (Node 22+) in every Task: polyfill it before the
// library is loaded.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const nodeModules = process.argv[2] || process.env.SFNLOCAL_NODE_MODULES;
if (!nodeModules) {
  console.error('usage: node runner.mjs <node_modules dir>');
  process.exit(2);
}
const lib = await import(
  pathToFileURL(path.join(nodeModules, 'aws-local-stepfunctions', 'build', 'main.node.esm.js')).href
);
const { StateMachine, ExecutionError, ExecutionTimeoutError, ExecutionAbortedError } = lib;

// The Go side wrote this script to a temporary directory: now that it is
// loaded, remove it, so that nothing is left behind however we end.
if (process.env.SFNLOCAL_TMPDIR) {
  try {
    fs.rmSync(process.env.SFNLOCAL_TMPDIR, { recursive: true, force: true });
  } catch {
    // the Go side removes it on Close
  }
}

// A Task error: name is what Retry and Catch match (ErrorEquals).
class TaskError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

class UnsupportedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'Runner.Unsupported';
  }
}

const LAMBDA_INVOKE = /^arn:aws[a-z-]*:states:::lambda:invoke$/;
const LAMBDA_FUNCTION = /^arn:aws[a-z-]*:lambda:[^:]*:[^:]*:function:[^:]+(:[^:]+)?$/;

// Walks every state of a definition, nested ones included (Parallel
// branches, Map ItemProcessor/Iterator). fn(name, state, scope) where scope
// identifies the States object holding the state.
function walkStates(def, fn, scope = 'root') {
  if (!def || typeof def !== 'object' || !def.States) return;
  for (const [name, state] of Object.entries(def.States)) {
    fn(name, state, scope);
    if (state.Type === 'Parallel' && Array.isArray(state.Branches)) {
      state.Branches.forEach((b, i) => walkStates(b, fn, `${scope}/${name}[${i}]`));
    }
    if (state.Type === 'Map') {
      walkStates(state.ItemProcessor ?? state.Iterator, fn, `${scope}/${name}`);
    }
  }
}

// Features the library would silently ignore: refuse them instead.
function checkSupported(def) {
  const problems = [];
  if (def.QueryLanguage === 'JSONata') problems.push('top-level QueryLanguage JSONata');
  walkStates(def, (name, state) => {
    if (state.QueryLanguage === 'JSONata') problems.push(`state ${name}: QueryLanguage JSONata`);
    if ('Assign' in state) problems.push(`state ${name}: Assign (variables)`);
    if ('Arguments' in state || 'Output' in state) problems.push(`state ${name}: JSONata Arguments/Output`);
    if (state.Type === 'Map') {
      for (const f of ['ItemReader', 'ItemBatcher', 'ResultWriter']) {
        if (f in state) problems.push(`state ${name}: Distributed Map ${f}`);
      }
    }
    if (state.Type === 'Task' && !LAMBDA_INVOKE.test(state.Resource) && !LAMBDA_FUNCTION.test(state.Resource)) {
      problems.push(`state ${name}: Resource ${state.Resource} (only Lambda functions run locally)`);
    }
  });
  if (problems.length > 0) {
    throw new UnsupportedError(`aws-local-stepfunctions does not support: ${problems.join('; ')}`);
  }
}

// Returns a copy of def whose Retry intervals (and MaxDelaySeconds) are
// multiplied by scale, so that backoff and jitter keep their shape.
function scaleRetries(def, scale) {
  const copy = structuredClone(def);
  if (scale === 1) return copy;
  walkStates(copy, (name, state) => {
    if (!Array.isArray(state.Retry)) return;
    for (const r of state.Retry) {
      r.IntervalSeconds = (r.IntervalSeconds ?? 1) * scale;
      if (typeof r.MaxDelaySeconds === 'number') r.MaxDelaySeconds = r.MaxDelaySeconds * scale;
    }
  });
  return copy;
}


// Keep-alive connections to the Lambda endpoint; no request timeout (the
// Task's TimeoutSeconds bounds the call, as in Step Functions).
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

// POSTs body to url; resolves {status, headers, text}.
function post(url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          resolve({
            status: res.statusCode,
            headers: { get: (h) => res.headers[h.toLowerCase()] ?? null },
            text: async () => Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// Calls a Lambda function through the Invoke API of lambdaEndpoint.
async function invokeLambda(lambdaEndpoint, functionName, payload) {
  const url = `${lambdaEndpoint.replace(/\/+$/, '')}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`;
  let res;
  try {
    res = await post(url, JSON.stringify(payload ?? null));
  } catch (e) {
    throw new TaskError('Lambda.SdkClientException', `Unable to execute HTTP request: ${e?.message ?? e}`);
  }
  const text = await res.text();
  if (res.status < 200 || res.status >= 300) {
    let message = text;
    try {
      const body = JSON.parse(text);
      message = body.Message ?? body.message ?? text;
    } catch {
      // not JSON: keep the text
    }
    const type = res.headers.get('x-amzn-errortype')?.split(':')[0] || 'AWSLambdaException';
    throw new TaskError(`Lambda.${type}`, `${message} (Service: Lambda, Status Code: ${res.status})`);
  }
  let body = null;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      throw new TaskError('Lambda.SdkClientException', 'the function returned a payload that is not JSON');
    }
  }
  if (res.headers.get('x-amz-function-error')) {
    const errorType = body?.errorType ?? 'Lambda.Unknown';
    const errorMessage = body?.errorMessage ?? '';
    // Step Functions' Cause for a function error is the error payload as a
    // JSON string (no stack trace is ever passed on here).
    throw new TaskError(errorType, JSON.stringify({ errorMessage, errorType }));
  }
  return { body, version: res.headers.get('x-amz-executed-version') ?? '$LATEST', status: res.status };
}

// One local handler per Task state, calling the function its Resource names.
function taskHandlers(def, lambdaEndpoint) {
  const handlers = {};
  walkStates(def, (name, state) => {
    if (state.Type !== 'Task') return;
    const resource = String(state.Resource ?? '');
    if (LAMBDA_INVOKE.test(resource)) {
      // Optimised integration: the input is the evaluated Parameters,
      // {FunctionName, Payload, ...}; the result wraps the function's.
      handlers[name] = async (input) => {
        const fn = input?.FunctionName;
        if (typeof fn !== 'string' || fn === '') {
          throw new TaskError('States.Runtime', `Task ${name}: lambda:invoke needs Parameters.FunctionName`);
        }
        const out = await invokeLambda(lambdaEndpoint, fn, input.Payload ?? {});
        return { ExecutedVersion: out.version, Payload: out.body, StatusCode: out.status };
      };
    } else if (LAMBDA_FUNCTION.test(resource)) {
      handlers[name] = async (input) => (await invokeLambda(lambdaEndpoint, resource, input)).body;
    } else {
      handlers[name] = async () => {
        throw new UnsupportedError(`Task ${name}: unsupported resource ${resource}: only Lambda functions run locally`);
      };
    }
  });
  return handlers;
}

function causeString(c) {
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  if (c instanceof Error) return c.message;
  try {
    return JSON.stringify(c);
  } catch {
    return String(c);
  }
}

// Fail states: the library names the error "FailStateError" and makes up a
// cause when the state gives none; Step Functions leaves them empty.
function failStateInfo(def, stateName, error, cause) {
  let state = null;
  walkStates(def, (name, s) => {
    if (name === stateName && s.Type === 'Fail') state = s;
  });
  if (!state) return { error, cause };
  return {
    error: state.Error === undefined && state.ErrorPath === undefined ? '' : error,
    cause: state.Cause === undefined && state.CausePath === undefined ? '' : cause,
  };
}

function jsonBytes(v) {
  return Buffer.byteLength(JSON.stringify(v ?? null), 'utf8');
}

// Converts the library's events into the Go side's, and fills in Next for
// StateExited (the next state entered in the same scope and Map iteration),
// and the error for StateRetried (that of the failure being retried).
function convertEvents(raw, scopes) {
  const events = [];
  const openExit = new Map(); // scope|index → event waiting for its Next
  const lastFailure = new Map(); // state|index → {error, cause}
  for (const e of raw) {
    const stateName = e.state?.name ?? e.parentState?.name ?? '';
    const ev = { time: e.timestamp, type: e.type, state: stateName, error: '', cause: '', attempt: 0, next: '' };
    // The sizes of a state's input and output as Step Functions counts
    // them against its payload limit (UTF-8 JSON), not the payloads.
    if (e.type === 'StateEntered') ev.inputBytes = jsonBytes(e.state?.input);
    if (e.type === 'StateExited') ev.outputBytes = jsonBytes(e.state?.output);
    if (e.index !== undefined) ev.index = e.index;
    const key = `${stateName}|${e.index ?? ''}`;
    const scopeKey = `${scopes.get(stateName) ?? '?'}|${e.index ?? ''}`;
    if ('Error' in e || 'Cause' in e) {
      ev.error = e.Error ?? '';
      ev.cause = causeString(e.Cause);
    }
    switch (e.type) {
      case 'StateEntered': {
        const prev = openExit.get(scopeKey);
        if (prev) {
          prev.next = stateName;
          openExit.delete(scopeKey);
        }
        break;
      }
      case 'StateExited':
        openExit.set(scopeKey, ev);
        break;
      case 'StateFailed':
        lastFailure.set(key, { error: ev.error, cause: ev.cause });
        break;
      case 'StateRetried': {
        ev.attempt = e.retry?.attempt ?? 0;
        const f = lastFailure.get(key);
        if (f) {
          ev.error = f.error;
          ev.cause = f.cause;
        }
        break;
      }
      case 'StateCaught': {
        ev.next = e.catch?.catcher?.Next ?? '';
        const f = lastFailure.get(key);
        if (f) {
          ev.error = f.error;
          ev.cause = f.cause;
        }
        break;
      }
    }
    events.push(ev);
  }
  return events;
}

// Hashes of the definitions that passed checkSupported and the library's
// validation. Validating costs tens of milliseconds (seconds on a busy
// machine) and a state machine's definition does not change between its
// executions, so each definition is validated once, like Step Functions
// validates it when the state machine is created, not when it runs. Only
// definitions that passed are remembered: an invalid one is refused every
// time. Bounded, oldest forgotten first.
const validated = new Set();
const maxValidated = 256;

function validateOnce(def) {
  const key = createHash('sha256').update(JSON.stringify(def)).digest('hex');
  if (validated.has(key)) return;
  checkSupported(def);
  new StateMachine(def);
  if (validated.size >= maxValidated) validated.delete(validated.values().next().value);
  validated.add(key);
}

async function execute(req, signal) {
  const { definition, input, name, executionArn, stateMachineArn, lambdaEndpoint } = req;
  const scale = typeof req.retryIntervalScale === 'number' && req.retryIntervalScale > 0 ? req.retryIntervalScale : 1;
  const def = typeof definition === 'string' ? JSON.parse(definition) : definition;
  // Validate the definition as written (once), then run the scaled copy.
  validateOnce(def);
  const sm = new StateMachine(scaleRetries(def, scale), { validationOptions: { noValidate: true } });

  const scopes = new Map();
  walkStates(def, (n, _s, scope) => scopes.set(n, scope));
  const smName = stateMachineArn.split(':').pop();
  const start = Date.now();
  const execution = sm.run(input ?? {}, {
    overrides: { taskResourceLocalHandlers: taskHandlers(def, lambdaEndpoint) },
    context: {
      Execution: { Id: executionArn, Name: name, RoleArn: `arn:aws:iam::000000000000:role/${smName}-role`, RedriveCount: 0 },
      StateMachine: { Id: stateMachineArn, Name: smName },
    },
  });
  const onAbort = () => execution.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();

  const raw = [];
  const collecting = (async () => {
    for await (const e of execution.eventLogs) raw.push(e);
  })();

  let status = 'SUCCEEDED';
  let output = null;
  let error = '';
  let cause = '';
  try {
    output = await execution.result;
  } catch (e) {
    if (e instanceof ExecutionTimeoutError) {
      status = 'TIMED_OUT';
      error = 'States.Timeout';
      cause = 'The execution ran longer than the state machine\u2019s TimeoutSeconds';
    } else if (e instanceof ExecutionAbortedError) {
      status = 'ABORTED';
    } else if (e instanceof ExecutionError && e.cause) {
      status = 'FAILED';
      error = e.cause.name ?? 'Error';
      cause = causeString(e.cause.cause ?? e.cause.message);
    } else {
      throw e;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  // The event log closes with the execution's last event.
  let timer;
  await Promise.race([collecting, new Promise((r) => (timer = setTimeout(r, 1000)))]);
  clearTimeout(timer);
  // Nested executions (Map, Parallel) forward their events asynchronously:
  // put the history in time order (the sort is stable).
  const events = convertEvents(raw, scopes).sort((a, b) => a.time - b.time);
  if (status === 'FAILED') {
    const failed = [...events].reverse().find((ev) => ev.type === 'ExecutionFailed');
    if (failed) {
      error = failed.error;
      cause = failed.cause;
    }
    const lastFailedState = [...events].reverse().find((ev) => ev.type === 'StateFailed');
    if (lastFailedState && scopes.get(lastFailedState.state) === 'root') {
      ({ error, cause } = failStateInfo(def, lastFailedState.state, error, cause));
      lastFailedState.error = error;
      lastFailedState.cause = cause;
      if (failed) {
        failed.error = error;
        failed.cause = cause;
      }
    }
  }
  const end = events.length > 0 ? events[events.length - 1].time : Date.now();
  return { status, output: status === 'SUCCEEDED' ? output : null, error, cause, start: events[0]?.time ?? start, end, events };
}

function send(res, code, body) {
  if (res.writableEnded || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/ping') {
    send(res, 200, { ok: true });
    return;
  }
  if (req.method !== 'POST' || req.url !== '/execute') {
    send(res, 404, { message: `no route ${req.method} ${req.url}` });
    return;
  }
  // A caller that goes away (Go context cancelled) aborts its execution.
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  const started = Date.now();
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    send(res, 200, await execute(body, ac.signal));
  } catch (e) {
    const now = Date.now();
    send(res, 200, {
      status: 'FAILED',
      output: null,
      error: 'Runner.Error',
      cause: `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`,
      start: started,
      end: now,
      events: [],
    });
  }
});
// Executions can run for a long time (the state machine's TimeoutSeconds),
// and the Go client closes idle connections before the server does.
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.keepAliveTimeout = 10 * 60_000;
server.timeout = 0;

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

// Exit with the parent: it holds our stdin open for as long as it runs.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
