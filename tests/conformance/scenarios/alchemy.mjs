/*
 * alchemy 0.94.0 (run with tsx): al1 deploys a KV namespace and a Worker
 * binding it, a secret and a var; an unchanged rerun must change nothing
 * that exists; "--destroy" must remove both.
 */
import fs from "node:fs";
import path from "node:path";
import {
	api, apiOk, assert, expectBinding, expectClientOk, fixture, listAll, scenario,
	pathsOf, settingsBindings, sha256, simState, summary, tsx,
} from "../lib/sim.mjs";

const W = "alchemy-demo";
let dir;
let kvId;

async function cacheNamespaces() {
	return (await listAll("/storage/kv/namespaces")).filter((n) => n.title === "alchemy-cache");
}

async function expectDeployed(when) {
	const kv = await cacheNamespaces();
	assert(kv.length === 1, `${when}: ${kv.length} KV namespaces titled 'alchemy-cache', expected 1`);
	kvId = kv[0].id;
	const r = await api("GET", `/workers/scripts/${W}`);
	assert(r.status === 200, `${when}: GET /workers/scripts/${W} -> ${r.status}, expected 200`);
	const b = await settingsBindings(W);
	const where = `${when}: GET /workers/scripts/${W}/settings`;
	expectBinding(b, "CACHE", { type: "kv_namespace", namespace_id: kvId }, where);
	expectBinding(b, "API_SECRET", { type: "secret_text" }, where);
	expectBinding(b, "GREETING", { type: "plain_text", text: "hello" }, where);
	const s = b.find((x) => x.name === "API_SECRET");
	assert(s.text === undefined, `${where} returns the secret's text`);
}

await scenario("alchemy-deploy", async () => {
	dir = fixture("al1");
	/* ESM imports resolve from the file's directory, not NODE_PATH. */
	fs.symlinkSync(process.env.CONFORMANCE_NODE_MODULES, path.join(dir, "node_modules"));
	await expectClientOk(tsx(["alchemy.run.ts"], { cwd: dir }));
	await expectDeployed("after the first run");
});

await scenario("alchemy-secret-hashed-in-state", async () => {
	const text = JSON.stringify(await simState());
	assert(!text.includes("hunter2"), "GET /__sim/state shows API_SECRET's value in plain text");
	assert(text.includes(`sha256:${sha256("hunter2")}`),
		"GET /__sim/state has no \"sha256:<hex of the value>\" for API_SECRET (DESIGN.md: secret values only as sha256:<hex>)");
}, { needs: ["alchemy-deploy"] });

await scenario("alchemy-rerun-unchanged", async () => {
	const before = kvId;
	await expectClientOk(tsx(["alchemy.run.ts"], { cwd: dir }));
	await expectDeployed("after an unchanged rerun");
	assert(kvId === before, `the rerun replaced the KV namespace (${before} -> ${kvId})`);
}, { needs: ["alchemy-deploy"] });

await scenario("alchemy-destroy", async () => {
	await expectClientOk(tsx(["alchemy.run.ts", "--destroy"], { cwd: dir }));
	const r = await api("GET", `/workers/scripts/${W}`);
	assert(r.status === 404, `after --destroy, GET /workers/scripts/${W} -> ${r.status}, expected 404`);
	const { result: scripts } = await apiOk("GET", "/workers/scripts");
	assert(!scripts.some((s) => s.id === W), `after --destroy, GET /workers/scripts still lists ${W}`);
	const kv = await cacheNamespaces();
	assert(kv.length === 0, `after --destroy, ${kv.length} KV namespaces titled 'alchemy-cache' remain`);
	/* The audit log keeps naming it, as it should; nothing else may. */
	const left = pathsOf(await simState(), W).filter((p) => !/audit/i.test(p));
	assert(!left.length, `after --destroy, GET /__sim/state still has "${W}" at ${left.slice(0, 4).join(", ")}`);
}, { needs: ["alchemy-deploy"] });

summary();
