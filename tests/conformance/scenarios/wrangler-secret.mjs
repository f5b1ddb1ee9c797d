/*
 * wrangler 4.86.0 secrets: "secret put" on a worker that does not exist yet
 * (wrangler uploads a placeholder, then retries), "secret list", "secret
 * delete", and a secret surviving a deploy that does not mention it.
 * cfsim must keep only a hash of each value.
 */
import {
	api, apiOk, assert, expectBinding, pathsOf, expectClientOk, fixture, scenario, settingsBindings, sha256, simState,
	summary, wrangler,
} from "../lib/sim.mjs";

const W = "other-worker";
let dir;

async function secretNames() {
	const { result } = await apiOk("GET", `/workers/scripts/${W}/secrets`);
	assert(Array.isArray(result), `GET /workers/scripts/${W}/secrets: result is not an array`);
	return result.map((s) => `${s.name}:${s.type}`).sort();
}

await scenario("wrangler-secret-put-new-worker", async () => {
	dir = fixture("other");
	await expectClientOk(wrangler(["secret", "put", "MY_SECRET"], { cwd: dir, input: "s3cr3t-value" }));
	const { result: scripts } = await apiOk("GET", "/workers/scripts");
	assert(scripts.some((s) => s.id === W), `GET /workers/scripts: no placeholder worker '${W}' after secret put`);
	const names = await secretNames();
	assert(names.join() === "MY_SECRET:secret_text", `secrets are [${names}], expected [MY_SECRET:secret_text]`);
});

await scenario("wrangler-secret-hashed-in-state", async () => {
	const text = JSON.stringify(await simState());
	assert(!text.includes("s3cr3t-value"), "GET /__sim/state shows the secret value in plain text");
	assert(text.includes(`sha256:${sha256("s3cr3t-value")}`),
		"GET /__sim/state has no \"sha256:<hex of the value>\" for MY_SECRET (DESIGN.md: secret values only as sha256:<hex>)");
}, { needs: ["wrangler-secret-put-new-worker"] });

await scenario("wrangler-secret-put-list-delete", async () => {
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));
	await expectClientOk(wrangler(["secret", "put", "SECOND"], { cwd: dir, input: "another-value" }));
	const list = await expectClientOk(wrangler(["secret", "list", "--format", "json"], { cwd: dir }));
	let listed;
	try {
		listed = JSON.parse(list.out.slice(list.out.indexOf("[")));
	} catch {
		listed = null;
	}
	assert(Array.isArray(listed), `wrangler secret list printed no JSON array: ${list.out.slice(0, 200)}`);
	const printed = listed.map((s) => s.name).sort().join();
	assert(printed === "MY_SECRET,SECOND", `wrangler secret list printed [${printed}], expected [MY_SECRET,SECOND]`);
	await expectClientOk(wrangler(["secret", "delete", "SECOND"], { cwd: dir }));
	const names = await secretNames();
	assert(names.join() === "MY_SECRET:secret_text", `after delete, secrets are [${names}], expected [MY_SECRET:secret_text]`);
	const b = await settingsBindings(W);
	const s = b.find((x) => x.name === "MY_SECRET");
	assert(s && s.type === "secret_text", `GET .../settings: no secret_text binding MY_SECRET (${JSON.stringify(b)})`);
	assert(s.text === undefined, "GET .../settings returns the secret's text");
}, { needs: ["wrangler-secret-put-new-worker"] });

await scenario("wrangler-secret-survives-deploy", async () => {
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));
	const names = await secretNames();
	assert(names.includes("MY_SECRET:secret_text"),
		`a deploy whose metadata does not mention MY_SECRET dropped it: secrets are [${names}] ` +
		"(cloudflare-clients.md §3: secrets set with 'wrangler secret put' must survive a deploy that does not mention them)");
}, { needs: ["wrangler-secret-put-new-worker"] });

await scenario("wrangler-versions-secret-put", async () => {
	/*
	 * Copies the latest version with one more secret: GET .../versions/<id>,
	 * GET .../script-settings, GET .../content/v2?version=<id> (the modules,
	 * multipart), then POST .../versions with inherit bindings and the modules.
	 */
	const { result: before } = await apiOk("GET", `/workers/scripts/${W}/versions`);
	const known = new Set((before.items || []).map((v) => v.id));
	await expectClientOk(wrangler(["versions", "secret", "put", "VSECRET"], { cwd: dir, input: "v-secret-value" }));
	const { result: after } = await apiOk("GET", `/workers/scripts/${W}/versions`);
	const fresh = (after.items || []).filter((v) => !known.has(v.id));
	assert(fresh.length === 1, `GET /workers/scripts/${W}/versions: ${fresh.length} new versions after 'versions secret put', expected 1`);
	const { result: ver } = await apiOk("GET", `/workers/scripts/${W}/versions/${fresh[0].id}`);
	const vb = ver && ver.resources && ver.resources.bindings || [];
	const where = `GET /workers/scripts/${W}/versions/${fresh[0].id}`;
	expectBinding(vb, "VSECRET", { type: "secret_text" }, where);
	expectBinding(vb, "MY_SECRET", { type: "secret_text" }, where);
	const text = JSON.stringify(await simState());
	assert(!text.includes("v-secret-value"), "GET /__sim/state shows VSECRET's value in plain text");
}, { needs: ["wrangler-secret-put-new-worker"] });

await scenario("wrangler-delete", async () => {
	/*
	 * Without --force wrangler first asks who depends on the worker
	 * (GET .../references, GET /workers/tails/by-consumer/<name>), then
	 * sends DELETE /workers/services/<name>?force=false.
	 */
	await expectClientOk(wrangler(["delete"], { cwd: dir }));
	const { result: scripts } = await apiOk("GET", "/workers/scripts");
	assert(!scripts.some((s) => s.id === W), `after wrangler delete, GET /workers/scripts still lists ${W}`);
	const r = await api("GET", `/workers/scripts/${W}/secrets`);
	assert(r.status === 404, `after wrangler delete, GET /workers/scripts/${W}/secrets -> ${r.status}, expected 404`);
	const left = pathsOf(await simState(), W).filter((p) => !/audit/i.test(p));
	assert(!left.length, `after wrangler delete, GET /__sim/state still has "${W}" at ${left.slice(0, 4).join(", ")}`);
}, { needs: ["wrangler-secret-put-new-worker"] });

summary();
