// The API clients: Connect from the browser to the server that served the
// page, with the tab's bearer token (if one was given) on every call.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ListValueSchema, ValueSchema, timestampDate, type ListValue, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import { WorkflowService, WorkflowStatus, StepStatus } from "./gen/weft/v1/workflow_pb";
import { DefinitionService } from "./gen/weft/v1/definition_pb";
import { TriggerService } from "./gen/weft/v1/trigger_pb";
import { signal } from "./state";

const tokenKey = "weft.token";

export function getToken(): string | null {
  return sessionStorage.getItem(tokenKey);
}

export function setToken(t: string) {
  sessionStorage.setItem(tokenKey, t);
}

/** authNeeded is set when the API answered Unauthenticated: the app asks for a token. */
export const authNeeded = signal<string | null>(null);

const auth: Interceptor = (next) => async (req) => {
  const t = getToken();
  if (t) req.header.set("Authorization", "Bearer " + t);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Unauthenticated) authNeeded.set(t ? "The token was not accepted: " + err.rawMessage : "This server needs a token.");
    throw e;
  }
};

// Values nest as deep as the server records them (a JSON level is two
// protobuf messages): the default limit of 100 would fail whole pages.
const transport = createConnectTransport({
  baseUrl: location.origin,
  interceptors: [auth],
  useBinaryFormat: true,
  binaryOptions: { recursionLimit: 1000 },
});

export const workflows = createClient(WorkflowService, transport);
export const definitions = createClient(DefinitionService, transport);
export const triggers = createClient(TriggerService, transport);

/** errorText is what a failed call says, for people. */
export function errorText(e: unknown): string {
  const err = ConnectError.from(e);
  return `${Code[err.code] ?? err.code}: ${err.rawMessage}`;
}

export function isCode(e: unknown, c: Code): boolean {
  return ConnectError.from(e).code === c;
}

export { Code };

/** valueJson returns v as JSON, its objects' keys in order, so a value
 * reads the same on every load (a map's keys come in any order). */
export function valueJson(v: Value | undefined): JsonValue | undefined {
  return v === undefined ? undefined : sortKeys(toJson(ValueSchema, v));
}

function sortKeys(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== "object") return v;
  const out: { [k: string]: JsonValue } = {};
  for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k] as JsonValue);
  return out;
}

export function listJson(v: ListValue | undefined): JsonValue[] {
  return v === undefined ? [] : (toJson(ListValueSchema, v) as JsonValue[]);
}

export function jsonValue(v: JsonValue): Value {
  return fromJson(ValueSchema, v);
}

export function date(t: Timestamp | undefined): Date | undefined {
  return t === undefined ? undefined : timestampDate(t);
}

export const statusNames: Record<number, string> = {
  [WorkflowStatus.RUNNING]: "running",
  [WorkflowStatus.QUEUED]: "queued",
  [WorkflowStatus.COMPLETED]: "completed",
  [WorkflowStatus.FAILED]: "failed",
  [WorkflowStatus.CANCELED]: "canceled",
  [WorkflowStatus.SUSPENDED]: "suspended",
};

export function statusName(s: WorkflowStatus): string {
  return statusNames[s] ?? "unknown";
}

export function statusOf(name: string): WorkflowStatus {
  for (const [k, v] of Object.entries(statusNames)) if (v === name) return Number(k);
  return WorkflowStatus.UNSPECIFIED;
}

export function stepStatusName(s: StepStatus): string {
  return (StepStatus[s] ?? "unspecified").toLowerCase();
}

export { WorkflowStatus, StepStatus };
