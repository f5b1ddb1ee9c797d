/*
 * sim.mjs: what every conformance scenario shares.
 *
 * - scenario(name, fn) runs one check and prints "PASS: name" or
 *   "FAIL: name (reason)" with indented detail lines after a failure;
 * - wrangler(), tsx() run a pinned client with a timeout and keep its output;
 * - api(), sim() talk to cfsim directly: the Cloudflare API under
 *   /client/v4/accounts/<id>, and the operator routes under /__sim;
 * - fixture() copies a fixture into the scenario's own directory, filling
 *   in @NAME@ placeholders (ids that only exist once cfsim made them).
 *
 * The runner (conformance.sh) sets CFSIM_URL, CFSIM_ROOT, the clients'
 * environment and CONFORMANCE_* paths before it starts a scenario file.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const env = process.env;
export const ACCOUNT = env.CLOUDFLARE_ACCOUNT_ID;
export const TOKEN = env.CLOUDFLARE_API_TOKEN;
export const BASE = env.CFSIM_URL;
export const ROOT = env.CFSIM_ROOT;
export const DIR = env.CONFORMANCE_SCENARIO_DIR;
const MODULES = env.CONFORMANCE_NODE_MODULES;
const FIXTURES = env.CONFORMANCE_FIXTURES;

for (const [k, v] of Object.entries({ ACCOUNT, TOKEN, BASE, ROOT, DIR, MODULES, FIXTURES }))
	if (!v) {
		console.log(`FAIL: ${path.basename(process.argv[1], ".mjs")} (${k} not set: run me through conformance.sh)`);
		process.exit(1);
	}

/* A failed expectation: message is the one-line reason, details go below it. */
export class Failure extends Error {
	constructor(message, details = []) {
		super(message);
		this.details = details;
	}
}

export function fail(message, details = []) {
	throw new Failure(message, details);
}

export function assert(cond, message, details = []) {
	if (!cond)
		fail(message, details);
}

let counts = { passed: 0, failed: 0 };
const done = new Set();

/*
 * Runs one scenario.  A scenario whose prerequisite failed is reported as
 * failed too ("not run"), so the output always names every scenario.
 */
export async function scenario(name, fn, { needs = [] } = {}) {
	const missing = needs.filter((n) => !done.has(n));
	if (missing.length) {
		console.log(`FAIL: ${name} (not run: it needs ${missing.join(", ")}, which failed)`);
		counts.failed++;
		return false;
	}
	const t0 = Date.now();
	try {
		await fn();
		console.log(`PASS: ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
		counts.passed++;
		done.add(name);
		return true;
	} catch (e) {
		const reason = String(e && e.message ? e.message : e).replace(/\s+/g, " ").trim();
		console.log(`FAIL: ${name} (${reason})`);
		const details = e instanceof Failure ? e.details : String(e.stack || "").split("\n").slice(1, 6);
		for (const d of details)
			for (const line of String(d).split("\n"))
				console.log(`  ${line}`);
		counts.failed++;
		return false;
	}
}

export function summary() {
	process.exitCode = counts.failed ? 1 : 0;
}

/* --- cfsim, directly ---------------------------------------------------- */

/* A URL as the reasons show it: "/accounts/$A/..." for account routes. */
export function short(url) {
	return url.replace(ROOT, "").replace(`/client/v4/accounts/${ACCOUNT}`, "/accounts/$A");
}

async function request(url, method, body, headers = {}) {
	const init = { method, headers: { authorization: `Bearer ${TOKEN}`, ...headers }, signal: AbortSignal.timeout(15000) };
	if (body !== undefined) {
		if (body instanceof FormData) {
			init.body = body;
		} else {
			init.body = JSON.stringify(body);
			init.headers["content-type"] = "application/json";
		}
	}
	let res;
	try {
		res = await fetch(url, init);
	} catch (e) {
		fail(`${method} ${short(url)}: no answer from cfsim (${e.cause ? e.cause.code || e.cause.message : e.message})`);
	}
	const text = await res.text();
	let json;
	try {
		json = JSON.parse(text);
	} catch {
		json = undefined;
	}
	return { status: res.status, json, text, what: `${method} ${short(url)}` };
}

/* One line describing an answer: status, error codes, a bit of the body. */
export function describe(r) {
	const errs = r.json && Array.isArray(r.json.errors) && r.json.errors.length
		? " errors=" + JSON.stringify(r.json.errors.map((e) => ({ code: e.code, message: e.message })))
		: "";
	return `${r.what} -> ${r.status}${errs}${r.json === undefined ? " body=" + JSON.stringify(r.text.slice(0, 120)) : ""}`;
}

/* An account API call; path is relative to /accounts/<id>. */
export function api(method, p, body, headers) {
	return request(`${BASE}/accounts/${ACCOUNT}${p}`, method, body, headers);
}

/* An account API call that must succeed with the envelope; returns result. */
export async function apiOk(method, p, body, headers) {
	const r = await api(method, p, body, headers);
	if (r.status < 200 || r.status > 299 || !r.json || r.json.success !== true)
		fail(`cfsim answered ${describe(r)}`);
	return { result: r.json.result, info: r.json.result_info, r };
}

/* An operator route: GET /__sim/state etc. */
export async function sim(method, p, body) {
	const r = await request(`${ROOT}/__sim/${p}`, method, body);
	if (r.status !== 200 || r.json === undefined)
		fail(`operator route answered ${describe(r)}`);
	return r.json;
}

export const simState = () => sim("GET", "state");
export const simStats = () => sim("GET", "stats");

/*
 * Every object anywhere inside value for which pred is true.  State checks
 * use this so they depend on what cfsim stores, not on how it nests it.
 */
export function findDeep(value, pred, out = []) {
	if (Array.isArray(value)) {
		for (const v of value)
			findDeep(v, pred, out);
	} else if (value && typeof value === "object") {
		if (pred(value))
			out.push(value);
		for (const v of Object.values(value))
			findDeep(v, pred, out);
	}
	return out;
}

export const sha256 = (s) => createHash("sha256").update(s).digest("hex");

/* The number of requests per "METHOD /path" route whose key matches re. */
export function routeCount(stats, method, re) {
	let n = 0;
	for (const [k, v] of Object.entries(stats.by_route || {})) {
		const sp = k.indexOf(" ");
		if (k.slice(0, sp) === method && re.test(k.slice(sp + 1)))
			n += Number(v) || 0;
	}
	return n;
}

/* Request lines recorded by cfsim since the given list length, as text. */
export async function recentRequests(limit = 25) {
	try {
		const r = await sim("GET", "requests");
		const list = Array.isArray(r) ? r : r.requests || [];
		return list.slice(-limit).map((q) => `${q.method} ${short(String(q.path))} -> ${q.status}`);
	} catch (e) {
		return [`(GET /__sim/requests failed: ${e.message})`];
	}
}

/* --- clients --------------------------------------------------------------- */

let seq = 0;

/*
 * Runs a command with a timeout; its combined output goes to a numbered log
 * file in the scenario directory.  Returns { code, out, log, what }.
 */
export function run(cmd, args, { cwd = DIR, timeout = 90, input, extraEnv = {}, what } = {}) {
	const res = spawnSync(cmd, args, {
		cwd, input, encoding: "utf8", timeout: timeout * 1000, killSignal: "SIGKILL",
		env: { ...env, ...extraEnv }, maxBuffer: 64 * 1024 * 1024,
	});
	const out = (res.stdout || "") + (res.stderr || "");
	const log = path.join(DIR, `${String(++seq).padStart(2, "0")}-${path.basename(cmd)}.log`);
	fs.writeFileSync(log, `$ ${cmd} ${args.join(" ")}\n(cwd ${cwd})\n${out}`);
	const timedOut = res.error && res.error.code === "ETIMEDOUT" || res.signal === "SIGKILL";
	return {
		code: timedOut ? "timeout" : res.status === null ? res.signal : res.status,
		out, log, timedOut,
		what: what || `${path.basename(cmd)} ${args.join(" ")}`,
		timeout,
	};
}

const bin = (name) => path.join(MODULES, ".bin", name);

export function wrangler(args, opts = {}) {
	return run(bin("wrangler"), args, { what: `wrangler ${args.join(" ")}`, ...opts });
}

export function tsx(args, opts = {}) {
	return run(bin("tsx"), args, { timeout: 180, what: `tsx ${args.join(" ")}`, ...opts });
}

/* The lines of a client's output that explain a failure. */
export function errorLines(out) {
	const lines = out.split("\n").map((l) => l.replace(/\x1b\[[0-9;]*m/g, "").trimEnd());
	const picked = lines.filter((l) =>
		/\[ERROR\]|✘|Error:|error:|failed|\[code: \d+\]|TypeError|Cannot read|Unexpected/i.test(l));
	return (picked.length ? picked : lines.filter(Boolean).slice(-5)).slice(0, 8).map((l) => l.trim());
}

/*
 * Throws a precise failure for a client run that did not exit 0: the first
 * error line as the reason; more error lines, cfsim's recent requests and
 * the log file as details.
 */
export async function expectClientOk(res) {
	if (res.code === 0)
		return res;
	const errs = errorLines(res.out);
	const why = res.timedOut ? `timed out after ${res.timeout} s` : `exited ${res.code}`;
	/* The API's own words first: wrangler prints them as "... [code: N]". */
	const head = errs.find((l) => /\[ERROR\]/.test(l)) || errs[0] || "(no output)";
	const code = errs.find((l) => /\[code: \d+\]/.test(l));
	const reason = code && code !== head ? `${head} ${code}` : head;
	fail(`${res.what.replace(DIR + "/", "")} ${why}: ${reason.replace(/^✘ \[ERROR\] /, "")}`, [
		...errs.slice(1).map((l) => `client: ${l}`),
		...(await recentRequests(12)).map((l) => `cfsim: ${l}`),
		`log: ${path.basename(res.log)}`,
	]);
}

/* --- fixtures -------------------------------------------------------------- */

/*
 * Copies fixtures/<name> to <scenario dir>/<as> and replaces @KEY@ in every
 * text file with vars[KEY].  Returns the copy's path.
 */
export function fixture(name, vars = {}, as = name) {
	const dst = path.join(DIR, as);
	fs.rmSync(dst, { recursive: true, force: true });
	fs.cpSync(path.join(FIXTURES, name), dst, { recursive: true });
	const walk = (d) => {
		for (const e of fs.readdirSync(d, { withFileTypes: true })) {
			const p = path.join(d, e.name);
			if (e.isDirectory()) {
				walk(p);
				continue;
			}
			const text = fs.readFileSync(p, "utf8");
			const filled = text.replace(/@([A-Z0-9_]+)@/g, (m, k) => (k in vars ? String(vars[k]) : m));
			if (filled !== text)
				fs.writeFileSync(p, filled);
		}
	};
	walk(dst);
	return dst;
}

/* Edits a file in place. */
export function edit(file, from, to) {
	const text = fs.readFileSync(file, "utf8");
	assert(from instanceof RegExp ? from.test(text) : text.includes(from), `fixture ${file} has no '${from}'`);
	fs.writeFileSync(file, text.replace(from, to));
}

/* --- common reads ------------------------------------------------------------ */

/* Bindings of a script as GET .../settings reports them. */
export async function settingsBindings(script) {
	const { result } = await apiOk("GET", `/workers/scripts/${script}/settings`);
	assert(result && Array.isArray(result.bindings),
		`GET /workers/scripts/${script}/settings: result.bindings is not an array (${JSON.stringify(result).slice(0, 200)})`);
	return result.bindings;
}

/*
 * Checks that bindings has a binding named name whose fields include want
 * (alternatives: want may be a list of objects, any of which may match).
 */
export function expectBinding(bindings, name, want, where) {
	const b = bindings.find((x) => x.name === name);
	assert(b, `${where}: no binding '${name}' (have ${bindings.map((x) => `${x.name}:${x.type}`).join(", ") || "none"})`);
	const alts = Array.isArray(want) ? want : [want];
	const ok = alts.some((w) => Object.entries(w).every(([k, v]) => JSON.stringify(b[k]) === JSON.stringify(v)));
	assert(ok, `${where}: binding '${name}' is ${JSON.stringify(b)}, expected fields ${alts.map((w) => JSON.stringify(w)).join(" or ")}`);
	return b;
}

/* Pages through a page-number list with a large per_page. */
export async function listAll(p, key) {
	const items = [];
	for (let page = 1; page <= 50; page++) {
		const sep = p.includes("?") ? "&" : "?";
		const { result, info } = await apiOk("GET", `${p}${sep}page=${page}&per_page=100`);
		const got = key ? result[key] : result;
		assert(Array.isArray(got), `GET ${p}: result${key ? "." + key : ""} is not an array`);
		items.push(...got);
		if (!got.length || !info || !info.total_count || page * (info.per_page || 100) >= info.total_count)
			break;
	}
	return items;
}

/*
 * Uploads a one-module worker straight to cfsim (a setup step, not a client
 * under test): metadata as a JSON part, the module as a part named and
 * filed by its module name.
 */
export async function uploadScript(name, { code = "export default { fetch() { return new Response('ok'); } };", metadata = {} } = {}) {
	const form = new FormData();
	const meta = { main_module: "index.js", compatibility_date: "2025-01-01", bindings: [], ...metadata };
	form.append("metadata", new Blob([JSON.stringify(meta)], { type: "application/json" }), "metadata.json");
	form.append("index.js", new Blob([code], { type: "application/javascript+module" }), "index.js");
	return apiOk("PUT", `/workers/scripts/${name}`, form);
}

/* JSON paths (a.b[2].c) inside value whose string value or key equals s. */
export function pathsOf(value, s, at = "", out = []) {
	if (Array.isArray(value)) {
		value.forEach((v, i) => pathsOf(v, s, `${at}[${i}]`, out));
	} else if (value && typeof value === "object") {
		for (const [k, v] of Object.entries(value)) {
			const p = at ? `${at}.${k}` : k;
			if (k === s)
				out.push(p);
			pathsOf(v, s, p, out);
		}
	} else if (value === s) {
		out.push(at);
	}
	return out;
}
