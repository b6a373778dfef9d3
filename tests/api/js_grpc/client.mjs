// A Node.js client of the public gRPC API (proto/bacalhau/v1/api.proto), built the way any
// JavaScript user would build one: @grpc/proto-loader reads the project's .proto files at run
// time, @grpc/grpc-js speaks plaintext HTTP/2 to the requester. tests/api/test_grpc_from_node.py
// runs it against a real devstack and checks what it prints.
//
//   node client.mjs HOST:PORT agent                 Version, Alive, NodeInfo, Config
//   node client.mjs HOST:PORT job < job.json        submit, wait, read the job every way
//   node client.mjs HOST:PORT errors                refused calls: status, trailers, details
//   node client.mjs HOST:PORT nodes                 ListNodes, GetNode of each node
//   node client.mjs HOST:PORT versions N < job.json submit a named job N times, ListJobVersions
//
// Every result is one JSON object on its own line of stdout: {"call": ..., "ok": true,
// "response": ...} or {"call": ..., "ok": false, "error": {...}}. The client uses grpc-js's
// defaults (notably its 4 MiB receive limit), as a user's client would.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTO_ROOT = path.resolve(HERE, "..", "..", "..", "proto");
/** Every call ends within this (the server holds a wait at most 30 s). */
const DEADLINE_MS = 45_000;

// api.proto needs only logs.proto; types.proto is loaded for the table of execution states
// the JSON documents number (see EXECUTION_STATES).
const definition = protoLoader.loadSync(["bacalhau/v1/api.proto", "bacalhau/v1/types.proto"], {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // the proto's snake_case names, as the README and grpcurl spell them
  longs: String, // uint64/int64 (versions, sequence numbers, nanosecond times) exceed 2^53
  enums: String,
  defaults: true, // proto3 leaves out zero values: give them, so `more: false` is there
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).bacalhau.v1;
/** The numbers execution_json's states use, by the enum of types.proto. */
const EXECUTION_STATES = Object.fromEntries(
  definition["bacalhau.v1.ExecutionStateType"].type.value.map((v) => [v.number, v.name]),
);

const [address, scenario, ...args] = process.argv.slice(2);
if (!address || !scenario) {
  console.error("usage: node client.mjs HOST:PORT agent|job|errors|nodes|versions [N]");
  process.exit(2);
}
const credentials = grpc.credentials.createInsecure();
// The address is the requester's own: an http(s)_proxy of the environment must not take it.
const options = { "grpc.enable_http_proxy": 0 };
const jobs = new v1.JobService(address, credentials, options);
const nodes = new v1.NodeAPIService(address, credentials, options);
const agent = new v1.AgentService(address, credentials, options);

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function deadline() {
  return new Date(Date.now() + DEADLINE_MS);
}

/** A refused call as plain data: status, message and every trailer, -bin ones decoded. */
function describeError(err) {
  const metadata = {};
  for (const [key, value] of Object.entries(err.metadata ? err.metadata.getMap() : {})) {
    metadata[key] = Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
  }
  let details = null;
  if (metadata["bacalhau-error-details-bin"] !== undefined) {
    try {
      details = JSON.parse(metadata["bacalhau-error-details-bin"]);
    } catch {
      details = { unparsable: metadata["bacalhau-error-details-bin"] };
    }
  }
  return {
    code: err.code,
    status: STATUS_NAMES[err.code] ?? String(err.code),
    message: err.details,
    metadata,
    bacalhau: {
      code: metadata["bacalhau-error-code"] ?? null,
      field: metadata["bacalhau-error-field"] ?? null,
      component: metadata["bacalhau-error-component"] ?? null,
      hint: metadata["bacalhau-error-hint-bin"] ?? null,
      details,
    },
  };
}

/** One unary call; returns the response or null, printing either as one line. */
function unary(client, method, request, { label = method, quiet = false } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    client[method](request, { deadline: deadline() }, (err, response) => {
      const ms = Date.now() - started;
      if (err) {
        emit({ call: label, ok: false, ms, error: describeError(err) });
        resolve(null);
        return;
      }
      emit(quiet ? { call: label, ok: true, ms } : { call: label, ok: true, ms, response });
      resolve(response);
    });
  });
}

/** StreamJobLogs to its end: each stream's bytes joined before decoding (a chunk may end
 * inside a UTF-8 sequence). */
function streamLogs(request, label = "StreamJobLogs") {
  return new Promise((resolve) => {
    const started = Date.now();
    const parts = { LOG_STREAM_TYPE_STDOUT: [], LOG_STREAM_TYPE_STDERR: [] };
    const chunks = [];
    const call = jobs.StreamJobLogs(request, { deadline: deadline() });
    call.on("data", (chunk) => {
      (parts[chunk.stream] ??= []).push(chunk.data);
      chunks.push({ stream: chunk.stream, offset: chunk.offset, bytes: chunk.data.length });
    });
    const result = () => ({
      stdout: Buffer.concat(parts.LOG_STREAM_TYPE_STDOUT).toString("utf8"),
      stderr: Buffer.concat(parts.LOG_STREAM_TYPE_STDERR).toString("utf8"),
      chunks,
    });
    let done = false;
    call.on("error", (err) => {
      if (done) return;
      done = true;
      emit({ call: label, ok: false, ms: Date.now() - started, error: describeError(err), ...result() });
      resolve(null);
    });
    call.on("end", () => {
      if (done) return;
      done = true;
      emit({ call: label, ok: true, ms: Date.now() - started, response: result() });
      resolve(result());
    });
  });
}

function readStdin() {
  return readFileSync(0, "utf8");
}

async function agentScenario() {
  await unary(agent, "Version", {});
  await unary(agent, "Alive", {});
  const info = await unary(agent, "NodeInfo", {});
  if (info) emit({ call: "NodeInfo.parsed", ok: true, response: JSON.parse(info.node_json) });
  const config = await unary(agent, "Config", {});
  if (config) {
    emit({ call: "Config.parsed", ok: true, response: { keys: Object.keys(JSON.parse(config.config_json)) } });
  }
}

async function jobScenario() {
  const jobJson = readStdin();
  // Submit and wait in one call (REST: PUT /jobs?wait=&include=executions).
  const submitted = await unary(jobs, "SubmitJob", {
    job_json: jobJson,
    wait_seconds: 25,
    include_executions: true,
  });
  if (!submitted) return;
  const jobId = submitted.job_id;
  // The history long-poll held until the job is terminal, from the first item.
  let after = "0";
  let page;
  for (let round = 0; round < 5; round++) {
    page = await unary(
      jobs,
      "JobHistory",
      { job_id: jobId, after_seq: after, wait_seconds: 25, until: "terminal", include_executions: true },
      { label: round === 0 ? "JobHistory" : `JobHistory#${round}` },
    );
    if (!page || !page.more) break;
    after = page.next_after_seq;
  }
  const got = await unary(jobs, "GetJob", { job_id: jobId, include_history: true, include_executions: true });
  if (got) {
    // What a JS user gets from the JSON documents.
    const job = JSON.parse(got.job.job_json);
    emit({
      call: "GetJob.parsed",
      ok: true,
      response: {
        job,
        history: got.history.map((h) => JSON.parse(h.item_json)),
        executions: got.executions.map((e) => JSON.parse(e.execution_json)),
        // The structured state beside the JSON document's number, read through types.proto.
        execution_states: got.executions.map((e) => {
          const number = JSON.parse(e.execution_json).ComputeState.StateType;
          return { compute_state: e.compute_state, json_number: number, json_name: EXECUTION_STATES[number] };
        }),
      },
    });
  }
  // By unique ID prefix too (README: a job_id takes a full ID, a name or a unique prefix).
  await unary(jobs, "GetJob", { job_id: jobId.slice(0, 10) }, { label: "GetJob.prefix" });
  await unary(jobs, "ListExecutions", { job_id: jobId });
  await streamLogs({ job_id: jobId });
  await streamLogs({ job_id: jobId, follow: true }, "StreamJobLogs.follow");
  await streamLogs({ job_id: jobId, tail: 1 }, "StreamJobLogs.tail");
  const results = await unary(jobs, "GetResults", { job_id: jobId });
  if (results) {
    emit({ call: "GetResults.parsed", ok: true, response: results.result_json.map((r) => JSON.parse(r)) });
  }
  // Every page of ListJobs, to find the job among them.
  const listed = [];
  let token = "";
  for (let pageNo = 0; pageNo < 100; pageNo++) {
    const resp = await unary(jobs, "ListJobs", { limit: 2, next_token: token }, {
      label: pageNo === 0 ? "ListJobs" : `ListJobs#${pageNo}`,
      quiet: true,
    });
    if (!resp) break;
    listed.push(...resp.jobs.map((j) => ({ id: j.id, state: j.state, type: j.type })));
    token = resp.next_token;
    if (!token) break;
  }
  emit({ call: "ListJobs.all", ok: true, response: { jobs: listed } });
}

async function errorsScenario() {
  await unary(jobs, "GetJob", { job_id: "j-00000000-0000-0000-0000-000000000000" }, { label: "GetJob.unknown" });
  const invalid = { Type: "bogus", Count: 1, Tasks: [{ Name: "main", Engine: { Type: "noop" } }] };
  await unary(jobs, "SubmitJob", { job_json: JSON.stringify(invalid) }, { label: "SubmitJob.invalid_type" });
  const badTimeout = {
    Type: "batch",
    Count: 1,
    Tasks: [{ Name: "main", Engine: { Type: "noop" }, Timeouts: { ExecutionTimeout: "soon" } }],
  };
  await unary(jobs, "SubmitJob", { job_json: JSON.stringify(badTimeout) }, { label: "SubmitJob.invalid_timeout" });
  await unary(jobs, "SubmitJob", { job_json: "{not json" }, { label: "SubmitJob.not_json" });
  await unary(jobs, "SubmitJob", { job_json: "" }, { label: "SubmitJob.empty" });
  const fine = { Type: "batch", Count: 1, Tasks: [{ Name: "main", Engine: { Type: "noop" } }] };
  await unary(jobs, "SubmitJob", { job_json: JSON.stringify(fine), wait_seconds: -1 }, {
    label: "SubmitJob.negative_wait",
  });
  await unary(jobs, "SubmitJob", { job_json: JSON.stringify(fine), wait_seconds: NaN }, {
    label: "SubmitJob.nan_wait",
  });
  await unary(jobs, "JobHistory", { job_id: "j-00000000-0000-0000-0000-000000000000", until: "forever" }, {
    label: "JobHistory.bad_until",
  });
  await streamLogs({ job_id: "j-00000000-0000-0000-0000-000000000000" }, "StreamJobLogs.unknown");
  await unary(nodes, "GetNode", { node_id: "n-no-such-node" }, { label: "GetNode.unknown" });
}

async function nodesScenario() {
  const listed = await unary(nodes, "ListNodes", {});
  if (!listed) return;
  emit({ call: "ListNodes.parsed", ok: true, response: listed.nodes.map((n) => JSON.parse(n.node_json)) });
  for (const node of listed.nodes) {
    await unary(nodes, "GetNode", { node_id: node.id }, { label: `GetNode:${node.id}` });
  }
}

async function versionsScenario() {
  const count = Number(args[0] ?? "2");
  const jobJson = readStdin();
  let jobId = "";
  for (let i = 0; i < count; i++) {
    const resp = await unary(jobs, "SubmitJob", { job_json: jobJson, force: true }, {
      label: `SubmitJob#${i + 1}`,
      quiet: true,
    });
    if (!resp) return;
    jobId = resp.job_id;
  }
  // Every version, following a next_token should the answer ever be paged.
  const versions = [];
  let token = "";
  for (let page = 0; page < 100; page++) {
    const resp = await unary(jobs, "ListJobVersions", { job_id: jobId, next_token: token }, {
      label: page === 0 ? "ListJobVersions" : `ListJobVersions#${page}`,
      quiet: true,
    });
    if (!resp) return;
    versions.push(...resp.versions.map((v) => ({ version: v.version, bytes: v.job_json.length })));
    token = resp.next_token ?? "";
    if (!token) break;
  }
  emit({ call: "ListJobVersions.all", ok: true, response: { job_id: jobId, versions } });
}

const SCENARIOS = {
  agent: agentScenario,
  job: jobScenario,
  errors: errorsScenario,
  nodes: nodesScenario,
  versions: versionsScenario,
};

try {
  const run = SCENARIOS[scenario];
  if (!run) {
    console.error(`unknown scenario ${scenario}: one of ${Object.keys(SCENARIOS).join(", ")}`);
    process.exitCode = 2;
  } else {
    await run();
  }
} finally {
  jobs.close();
  nodes.close();
  agent.close();
}
