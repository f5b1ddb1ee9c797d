/*
 * The official cloudflare SDK 6.5.0 on one Worker: the upload whose module
 * part is named "files" (filename index.mjs), worker secrets one at a time
 * and in bulk, cron schedules, the workers.dev switch, and settings.
 */
import { createRequire } from "node:module";
import {
	ACCOUNT, BASE, TOKEN, apiOk, assert, fail, scenario, settingsBindings, sha256, simState, summary,
} from "../lib/sim.mjs";

const require = createRequire(`${process.env.CONFORMANCE_NODE_MODULES}/`);
const Cloudflare = require("cloudflare");
const cf = new Cloudflare({ apiToken: TOKEN, baseURL: BASE, maxRetries: 0, timeout: 15000 });
const account_id = ACCOUNT;
const W = "sdk-worker";

async function sdk(what, fn) {
	try {
		return await fn();
	} catch (e) {
		const errs = e && e.errors ? ` errors=${JSON.stringify(e.errors)}` : "";
		fail(`SDK ${what}: ${e && e.status ? `HTTP ${e.status} ` : ""}${e && e.message ? e.message : e}${errs}`.slice(0, 400));
	}
}

async function secretNames() {
	const names = [];
	await sdk("workers.scripts.secrets.list", async () => {
		for await (const s of cf.workers.scripts.secrets.list(W, { account_id }))
			names.push(s.name);
	});
	return names.sort();
}

await scenario("sdk-worker-upload", async () => {
	const code = "export default { fetch() { return new Response('sdk'); } };\n";
	const file = await Cloudflare.toFile(Buffer.from(code), "index.mjs", { type: "application/javascript+module" });
	const res = await sdk("workers.scripts.update", () => cf.workers.scripts.update(W, {
		account_id,
		metadata: {
			main_module: "index.mjs",
			compatibility_date: "2025-01-01",
			bindings: [{ type: "plain_text", name: "MODE", text: "sdk" }],
		},
		files: [file],
	}));
	assert(res && res.id === W, `SDK workers.scripts.update returned ${JSON.stringify(res).slice(0, 160)}, expected result.id "${W}"`);
	const b = await settingsBindings(W);
	assert(b.some((x) => x.name === "MODE" && x.text === "sdk"), `GET .../settings after the SDK upload: ${JSON.stringify(b)}`);
	const text = JSON.stringify(await simState());
	assert(text.includes(sha256(code)) || text.includes("index.mjs"),
		"GET /__sim/state names no module index.mjs (the SDK's part is named \"files\"; the module name is its filename)");
});

await scenario("sdk-worker-secrets", async () => {
	await sdk("workers.scripts.secrets.update", () => cf.workers.scripts.secrets.update(W, {
		account_id, name: "ONE", text: "one-value", type: "secret_text",
	}));
	await sdk("workers.scripts.secrets.update", () => cf.workers.scripts.secrets.update(W, {
		account_id, name: "TWO", text: "two-value", type: "secret_text",
	}));
	let names = await secretNames();
	assert(names.join() === "ONE,TWO", `secrets after two puts: [${names}], expected [ONE,TWO]`);
	const one = await sdk("workers.scripts.secrets.get", () => cf.workers.scripts.secrets.get(W, "ONE", { account_id }));
	assert(one && one.name === "ONE" && one.text === undefined, `SDK secrets.get ONE returned ${JSON.stringify(one)} (name, type; never the value)`);
	await sdk("workers.scripts.secrets.delete", () => cf.workers.scripts.secrets.delete(W, "TWO", { account_id }));
	names = await secretNames();
	assert(names.join() === "ONE", `secrets after deleting TWO: [${names}], expected [ONE]`);
	const b = await settingsBindings(W);
	assert(b.some((x) => x.name === "MODE" && x.text === "sdk"), `secret calls lost the MODE binding: ${JSON.stringify(b)}`);
}, { needs: ["sdk-worker-upload"] });

await scenario("sdk-worker-secrets-bulk", async () => {
	await sdk("workers.scripts.secrets.bulkUpdate", () => cf.workers.scripts.secrets.bulkUpdate(W, {
		account_id,
		secrets: {
			THREE: { name: "THREE", text: "three-value", type: "secret_text" },
			ONE: null,
		},
	}));
	const names = await secretNames();
	assert(names.join() === "THREE", `secrets after bulk {THREE: set, ONE: null}: [${names}], expected [THREE]`);
	const text = JSON.stringify(await simState());
	assert(!text.includes("three-value") && text.includes(`sha256:${sha256("three-value")}`),
		"GET /__sim/state does not keep the bulk secret as sha256:<hex> only");
}, { needs: ["sdk-worker-upload"] });

await scenario("sdk-worker-schedules-subdomain", async () => {
	const crons = ["*/10 * * * *", "0 3 * * 1"];
	await sdk("workers.scripts.schedules.update", () => cf.workers.scripts.schedules.update(W, {
		account_id, body: crons.map((cron) => ({ cron })),
	}));
	const got = await sdk("workers.scripts.schedules.get", () => cf.workers.scripts.schedules.get(W, { account_id }));
	const have = (got && got.schedules || []).map((s) => s.cron).sort();
	assert(have.join() === [...crons].sort().join(), `schedules: [${have}], expected [${crons}]`);
	await sdk("workers.scripts.schedules.update []", () => cf.workers.scripts.schedules.update(W, { account_id, body: [] }));
	const none = await sdk("workers.scripts.schedules.get", () => cf.workers.scripts.schedules.get(W, { account_id }));
	assert(none && Array.isArray(none.schedules) && none.schedules.length === 0, `schedules after PUT []: ${JSON.stringify(none)}`);
	await sdk("workers.scripts.subdomain.create", () => cf.workers.scripts.subdomain.create(W, { account_id, enabled: true }));
	const sub = await sdk("workers.scripts.subdomain.get", () => cf.workers.scripts.subdomain.get(W, { account_id }));
	assert(sub && sub.enabled === true, `subdomain after enabling: ${JSON.stringify(sub)}`);
	const { result } = await apiOk("GET", "/workers/subdomain");
	assert(result && typeof result.subdomain === "string" && result.subdomain, `GET /workers/subdomain: ${JSON.stringify(result)}`);
}, { needs: ["sdk-worker-upload"] });

summary();
