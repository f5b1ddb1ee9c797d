/*
 * cfsim's injected faults (POST /__sim/faults) must look like Cloudflare's
 * own to a real client: the cloudflare SDK 6.5.0 retries 429 (honouring
 * Retry-After) and 5xx, so with faults that clear after a few requests its
 * calls succeed, later, and a faulted write is not applied.
 */
import { createRequire } from "node:module";
import {
	ACCOUNT, BASE, TOKEN, assert, fail, listAll, scenario, sim, simStats, summary,
} from "../lib/sim.mjs";

const require = createRequire(`${process.env.CONFORMANCE_NODE_MODULES}/`);
const Cloudflare = require("cloudflare");
const cf = new Cloudflare({ apiToken: TOKEN, baseURL: BASE, maxRetries: 3, timeout: 15000 });
const account_id = ACCOUNT;

async function sdk(what, fn) {
	try {
		return await fn();
	} catch (e) {
		const errs = e && e.errors ? ` errors=${JSON.stringify(e.errors)}` : "";
		fail(`SDK ${what}: ${e && e.status ? `HTTP ${e.status} ` : ""}${e && e.message ? e.message : e}${errs}`.slice(0, 400));
	}
}

const statusCount = (stats, code) => Number((stats.by_status || {})[code] || 0);

await scenario("sdk-retries-injected-429", async () => {
	await sdk("kv.namespaces.create", () => cf.kv.namespaces.create({ account_id, title: "fault-kv" }));
	await sim("POST", "faults", [{ method: "GET", route: "/storage/kv/namespaces(\\?|$)", kind: "429", count: 1, retry_after: 1 }]);
	const before = await simStats();
	const t0 = Date.now();
	const titles = [];
	await sdk("kv.namespaces.list after a 429", async () => {
		for await (const n of cf.kv.namespaces.list({ account_id }))
			titles.push(n.title);
	});
	const waited = Date.now() - t0;
	await sim("POST", "faults", []);
	const got = statusCount(await simStats(), "429") - statusCount(before, "429");
	assert(got === 1, `cfsim answered ${got} requests with 429, expected the 1 injected`);
	assert(titles.includes("fault-kv"), `the retried list returned [${titles}]`);
	assert(waited >= 900, `the SDK retried after ${waited} ms; cfsim's 429 must carry Retry-After: 1 (the SDK honours it)`);
});

await scenario("sdk-retries-injected-503", async () => {
	await sim("POST", "faults", [{ method: "POST", route: "/d1/database(\\?|$)", kind: "503", count: 2 }]);
	const before = await simStats();
	const db = await sdk("d1.database.create through two 503s", () => cf.d1.database.create({ account_id, name: "fault-db" }));
	await sim("POST", "faults", []);
	const got = statusCount(await simStats(), "503") - statusCount(before, "503");
	assert(got === 2, `cfsim answered ${got} requests with 503, expected the 2 injected`);
	assert(db && db.uuid, `create returned ${JSON.stringify(db)}`);
	const dbs = (await listAll("/d1/database")).filter((d) => d.name === "fault-db");
	assert(dbs.length === 1, `${dbs.length} databases named fault-db after two faulted tries and one good one, expected 1`);
});

summary();
