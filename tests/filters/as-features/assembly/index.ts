// A test filter built with the AssemblyScript proxy-wasm SDK
// (@solo-io/proxy-runtime 0.1.8): what a filter from a second SDK does
// through a real host. The request header `x-test` (comma-separated) selects
// what it does:
//
//   headers       adds request header `x-as-filter: request` (the upstream
//                 sees it), removes request header `x-as-remove`, and answers
//                 with `x-as-filter: response` and `x-as-echo: <x-as-in>`
//   local-reply   answers 418 with `x-local-reply: yes`, body `short and stout`
//   callout       pauses; the HTTP context GETs `x-callout-path` (default /)
//                 on the configured cluster; the response arrives on the root
//                 context, the SDK switches to this stream
//                 (proxy_set_effective_context), which adds request header
//                 `x-as-callout-status` and resumes; response headers
//                 `x-callout-status` and `x-callout-body-bytes`
//                 (503 local reply when the call failed)
//   tick-callout  response header `x-tick-callout`: the status of the last
//                 callout the root context made on a tick (shared data)
//   ticks         response header `x-ticks`: ticks so far (shared data)
//   shared-data   increments shared counter `as-features.hits` with CAS;
//                 response header `x-shared-hits`
//   metrics       counter `as_features_requests_total`; response header
//                 `x-metric-requests`
//   properties    response headers `x-prop-path`, `x-prop-method`,
//                 `x-prop-root-id`
//   log           logs `as-features: <path>` at info level
//
// Configuration (plugin configuration string, space-separated key=value):
// `callout_cluster` (default `callout`), `tick_ms` (root tick period; each
// tick counts in shared data), `tick_callout_path` (each tick on which none
// is outstanding, the root context GETs it on the callout cluster).
// Root id: `as_features`.

export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  stream_context,
  send_local_response,
  log,
  LogLevelValues,
  Counter,
  HeaderPair,
  Headers,
  continue_request,
  GrpcStatusValues,
  WasmResultValues,
} from "@solo-io/proxy-runtime";
import {
  get_buffer_bytes,
  set_tick_period_milliseconds,
  BufferTypeValues,
} from "@solo-io/proxy-runtime/runtime";
import * as imports from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";

const HITS_KEY = "as-features.hits";
const TICKS_KEY = "as-features.ticks";
const TICK_CALLOUT_KEY = "as-features.tick-callout";

// ---- host helpers the SDK lacks (or gets wrong in 0.1.8) ----

/** Reads a (ptr, size) pair the host wrote at `base` as a string, freeing the host's copy. */
function takeString(base: usize): string {
  let ptr = load<u32>(base);
  let size = load<u32>(base + 4);
  let text = size == 0 ? "" : String.UTF8.decodeUnsafe(ptr, size);
  if (ptr != 0) free(ptr);
  return text;
}

/** A property, its path segments separated by NUL as the ABI wants; "" when absent. */
function property(path: string): string {
  let encoded = String.UTF8.encode(path.replaceAll(".", "\0"));
  let out = new ArrayBuffer(8);
  let base = changetype<usize>(out);
  let result = imports.proxy_get_property(changetype<usize>(encoded), encoded.byteLength, base, base + 4);
  if (result != WasmResultValues.Ok) return "";
  return takeString(base);
}

class SharedValue {
  value: string = "";
  cas: u32 = 0;
  found: bool = false;
}

function sharedGet(key: string): SharedValue {
  let encoded = String.UTF8.encode(key);
  let out = new ArrayBuffer(12);
  let base = changetype<usize>(out);
  let found = new SharedValue();
  let result = imports.proxy_get_shared_data(changetype<usize>(encoded), encoded.byteLength, base, base + 4, base + 8);
  if (result == WasmResultValues.Ok) {
    found.found = true;
    found.cas = load<u32>(base + 8);
    found.value = takeString(base);
  }
  return found;
}

function sharedSet(key: string, value: string, cas: u32): WasmResultValues {
  let k = String.UTF8.encode(key);
  let v = String.UTF8.encode(value);
  return imports.proxy_set_shared_data(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength, cas);
}

/** Adds `by` to the decimal counter `key` with compare-and-swap; the new value. */
function sharedIncrement(key: string, by: u64): u64 {
  for (let attempt = 0; attempt < 16; attempt++) {
    let current = sharedGet(key);
    let next = (current.found && current.value.length > 0 ? U64.parseInt(current.value) : 0) + by;
    if (sharedSet(key, next.toString(), current.cas) == WasmResultValues.Ok) return next;
  }
  return 0;
}

function metricValue(id: u32): u64 {
  let out = new ArrayBuffer(8);
  let base = changetype<usize>(out);
  if (imports.proxy_get_metric(id, base) != WasmResultValues.Ok) return 0;
  return load<u64>(base);
}

function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

function getRequest(cluster: string, path: string): Headers {
  return [pair(":method", "GET"), pair(":path", path), pair(":authority", cluster)];
}

// ---- the root context ----

class AsRoot extends RootContext {
  calloutCluster: string = "callout";
  tickMs: u32 = 0;
  tickCalloutPath: string = "";
  tickCalloutPending: bool = false;
  requests: Counter | null = null;

  createContext(context_id: u32): Context {
    return new AsFeatures(context_id, this);
  }

  // Reads the configuration itself: 0.1.8's onConfigure passes the
  // configuration size where the host writes the size back.
  onConfigure(configuration_size: u32): bool {
    let config = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size));
    let settings = config.split(" ");
    for (let i = 0; i < settings.length; i++) {
      let setting = settings[i];
      let eq = setting.indexOf("=");
      if (eq < 0) continue;
      let key = setting.substring(0, eq);
      let value = setting.substring(eq + 1);
      if (key == "callout_cluster") this.calloutCluster = value;
      else if (key == "tick_ms") this.tickMs = U32.parseInt(value);
      else if (key == "tick_callout_path") this.tickCalloutPath = value;
      else {
        log(LogLevelValues.error, "as-features: unknown setting " + key);
        return false;
      }
    }
    this.requests = new Counter("as_features_requests_total");
    if (this.tickMs > 0) set_tick_period_milliseconds(this.tickMs);
    log(LogLevelValues.info, "as-features configured: " + config);
    return true;
  }

  onTick(): void {
    sharedIncrement(TICKS_KEY, 1);
    if (this.tickCalloutPath.length > 0 && !this.tickCalloutPending) {
      let headers = getRequest(this.calloutCluster, this.tickCalloutPath);
      let result = this.httpCall(this.calloutCluster, headers, new ArrayBuffer(0), [], 2000, this, onTickCalloutResponse);
      if (result == WasmResultValues.Ok) this.tickCalloutPending = true;
      else log(LogLevelValues.warn, "as-features: tick callout failed to start: " + result.toString());
    }
  }
}

/** The answer to a callout the root context made on a tick. */
function onTickCalloutResponse(origin: Context, headers: u32, body_size: usize, trailers: u32): void {
  let root = changetype<AsRoot>(origin);
  root.tickCalloutPending = false;
  let status = headers == 0 ? "failed" : stream_context.headers.http_callback.get(":status");
  sharedSet(TICK_CALLOUT_KEY, status, 0);
}

// ---- the HTTP context ----

class AsFeatures extends Context {
  tests: string[] = [];
  names: string[] = [];
  values: string[] = [];

  constructor(context_id: u32, root_context: AsRoot) {
    super(context_id, root_context);
  }

  wants(test: string): bool {
    return this.tests.includes(test);
  }

  note(name: string, value: string): void {
    this.names.push(name);
    this.values.push(value);
  }

  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let root = changetype<AsRoot>(this.root_context);
    let request = stream_context.headers.request;
    let tests = request.get("x-test").split(",");
    for (let i = 0; i < tests.length; i++) {
      let test = tests[i].trim();
      if (test.length > 0) this.tests.push(test);
    }
    if (this.wants("log")) {
      log(LogLevelValues.info, "as-features: " + request.get(":path"));
    }
    if (this.wants("local-reply")) {
      send_local_response(418, "as_features", String.UTF8.encode("short and stout"), [pair("x-local-reply", "yes")], GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    if (this.wants("headers")) {
      request.add("x-as-filter", "request");
      request.remove("x-as-remove");
      this.note("x-as-filter", "response");
      this.note("x-as-echo", request.get("x-as-in"));
    }
    if (this.wants("shared-data")) {
      this.note("x-shared-hits", sharedIncrement(HITS_KEY, 1).toString());
    }
    if (this.wants("metrics")) {
      let counter = root.requests!;
      counter.increment(1);
      this.note("x-metric-requests", metricValue(counter.metric_id).toString());
    }
    if (this.wants("properties")) {
      this.note("x-prop-path", property("request.path"));
      this.note("x-prop-method", property("request.method"));
      this.note("x-prop-root-id", property("plugin_root_id"));
    }
    if (this.wants("callout")) {
      let path = request.get("x-callout-path");
      if (path.length == 0) path = "/";
      let headers = getRequest(root.calloutCluster, path);
      let result = root.httpCall(root.calloutCluster, headers, new ArrayBuffer(0), [], 2000, this, onStreamCalloutResponse);
      if (result != WasmResultValues.Ok) {
        send_local_response(500, "as_features", String.UTF8.encode("callout: " + result.toString()), [], GrpcStatusValues.InvalidCode);
      }
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    if (this.wants("ticks")) {
      let ticks = sharedGet(TICKS_KEY);
      this.note("x-ticks", ticks.found ? ticks.value : "0");
    }
    if (this.wants("tick-callout")) {
      this.note("x-tick-callout", sharedGet(TICK_CALLOUT_KEY).value);
    }
    let response = stream_context.headers.response;
    for (let i = 0; i < this.names.length; i++) {
      response.replace(this.names[i], this.values[i]);
    }
    return FilterHeadersStatusValues.Continue;
  }
}

/**
 * The answer to a callout an HTTP context made. The host delivers it to the
 * root context; the SDK has already switched to `origin`'s stream with
 * proxy_set_effective_context, so header changes, the local reply and the
 * continue below act on that stream.
 */
function onStreamCalloutResponse(origin: Context, headers: u32, body_size: usize, trailers: u32): void {
  let self = changetype<AsFeatures>(origin);
  if (headers == 0) {
    send_local_response(503, "as_features", String.UTF8.encode("callout failed"), [], GrpcStatusValues.InvalidCode);
    return;
  }
  let status = stream_context.headers.http_callback.get(":status");
  let body = get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, <u32>body_size);
  stream_context.headers.request.add("x-as-callout-status", status);
  self.note("x-callout-status", status);
  self.note("x-callout-body-bytes", body.byteLength.toString());
  continue_request();
}

registerRootContext((context_id: u32): RootContext => {
  return new AsRoot(context_id);
}, "as_features");
