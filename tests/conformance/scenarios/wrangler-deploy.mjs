/*
 * wrangler 4.86.0: deploy of w1 (every binding kind) onto resources made
 * beforehand, then a redeploy that must take the versions API path, then an
 * explicit "versions upload" + "versions deploy".
 */
import fs from "node:fs";
import path from "node:path";
import {
	apiOk, assert, edit, expectBinding, expectClientOk, fail, findDeep, fixture,
	routeCount, scenario, settingsBindings, simState, simStats, summary, wrangler,
} from "../lib/sim.mjs";

const W = "demo-worker";
let dir;
let ids = {};

/* The resources w1 binds, made through the API the way a user would have. */
async function setup() {
	const kv = await apiOk("POST", "/storage/kv/namespaces", { title: "demo-cache" });
	assert(kv.result && kv.result.id, `POST /storage/kv/namespaces: result.id missing (${JSON.stringify(kv.result)})`);
	const d1 = await apiOk("POST", "/d1/database", { name: "my-db" });
	assert(d1.result && d1.result.uuid, `POST /d1/database: result.uuid missing (${JSON.stringify(d1.result)})`);
	await apiOk("POST", "/r2/buckets", { name: "my-bucket" });
	await apiOk("POST", "/queues", { queue_name: "my-queue" });
	const store = await apiOk("POST", "/secrets_store/stores", { name: "default" });
	const s = Array.isArray(store.result) ? store.result[0] : store.result;
	assert(s && s.id, `POST /secrets_store/stores: no store id in result (${JSON.stringify(store.result)})`);
	await apiOk("POST", `/secrets_store/stores/${s.id}/secrets`,
		[{ name: "api-key", value: "store-secret-value", scopes: ["workers"] }]);
	ids = { KV_ID: kv.result.id, D1_ID: d1.result.uuid, STORE_ID: s.id };
	dir = fixture("w1", ids);
	/* The service binding's target exists, as it would for a real deploy. */
	const other = fixture("other");
	await expectClientOk(wrangler(["deploy"], { cwd: other }));
}

async function expectW1Bindings(greeting) {
	const b = await settingsBindings(W);
	const where = `GET /workers/scripts/${W}/settings`;
	expectBinding(b, "GREETING", { type: "plain_text", text: greeting }, where);
	expectBinding(b, "CONFIG", { type: "json", json: { level: 3, tags: ["a", "b"] } }, where);
	expectBinding(b, "CACHE", { type: "kv_namespace", namespace_id: ids.KV_ID }, where);
	expectBinding(b, "BUCKET", { type: "r2_bucket", bucket_name: "my-bucket" }, where);
	expectBinding(b, "DB", [{ type: "d1", id: ids.D1_ID }, { type: "d1", database_id: ids.D1_ID }], where);
	expectBinding(b, "Q", { type: "queue", queue_name: "my-queue" }, where);
	expectBinding(b, "COUNTER", { type: "durable_object_namespace", class_name: "Counter" }, where);
	expectBinding(b, "OTHER", { type: "service", service: "other-worker" }, where);
	expectBinding(b, "API_KEY", { type: "secrets_store_secret", store_id: ids.STORE_ID, secret_name: "api-key" }, where);
	assert(b.length === 9, `${where}: ${b.length} bindings, expected 9 (${b.map((x) => x.name).join(", ")})`);
}

async function latestDeployment() {
	const { result } = await apiOk("GET", `/workers/scripts/${W}/deployments`);
	assert(result && Array.isArray(result.deployments) && result.deployments.length,
		`GET /workers/scripts/${W}/deployments: no deployments (${JSON.stringify(result).slice(0, 200)})`);
	/* Newest first, as wrangler reads it (deployments.at(0)). */
	return { latest: result.deployments[0], all: result.deployments };
}

async function deployedVersionIds() {
	const { latest } = await latestDeployment();
	assert(Array.isArray(latest.versions) && latest.versions.length,
		`latest deployment has no versions: ${JSON.stringify(latest)}`);
	return latest.versions.map((v) => `${v.version_id}@${v.percentage}`);
}

await scenario("wrangler-deploy-all-bindings", async () => {
	await setup();
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));

	const { result: scripts } = await apiOk("GET", "/workers/scripts");
	const s = scripts.find((x) => x.id === W);
	assert(s, `GET /workers/scripts: no '${W}' (have ${scripts.map((x) => x.id).join(", ")})`);
	assert(s.migration_tag === "v1", `GET /workers/scripts: ${W}.migration_tag is ${JSON.stringify(s.migration_tag)}, expected "v1"`);
	await expectW1Bindings("hello");

	const { result: sched } = await apiOk("GET", `/workers/scripts/${W}/schedules`);
	const crons = (sched && sched.schedules || []).map((x) => x.cron);
	assert(crons.length === 1 && crons[0] === "*/5 * * * *",
		`GET /workers/scripts/${W}/schedules: crons ${JSON.stringify(crons)}, expected ["*/5 * * * *"]`);
	const { result: sub } = await apiOk("GET", `/workers/scripts/${W}/subdomain`);
	assert(sub && sub.enabled === true, `GET /workers/scripts/${W}/subdomain: enabled is ${JSON.stringify(sub && sub.enabled)}, expected true`);
	const versions = await deployedVersionIds();
	assert(versions.length === 1 && versions[0].endsWith("@100"), `latest deployment is ${versions.join(", ")}, expected one version at 100%`);

	const { result: dos } = await apiOk("GET", "/workers/durable_objects/namespaces");
	const ns = (dos || []).filter((n) => n.class === "Counter" && n.script === W);
	assert(ns.length === 1, `GET /workers/durable_objects/namespaces: ${ns.length} namespaces of class Counter in ${W}, expected 1 (${JSON.stringify(dos).slice(0, 200)})`);

	const state = await simState();
	assert(findDeep(state, (o) => o.id === W || o.name === W || o.script_name === W).length,
		`GET /__sim/state: no object for script '${W}'`);
});

await scenario("wrangler-redeploy-versions-path", async () => {
	const before = await simStats();
	const prev = await deployedVersionIds();
	edit(path.join(dir, "wrangler.toml"), 'GREETING = "hello"', 'GREETING = "hello again"');
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));
	const after = await simStats();
	const d = (m, re) => routeCount(after, m, re) - routeCount(before, m, re);
	const puts = d("PUT", /\/workers\/scripts\/[^/]+$/);
	const posts = d("POST", /\/workers\/scripts\/[^/]+\/versions$/);
	const deps = d("POST", /\/workers\/scripts\/[^/]+\/deployments$/);
	if (puts || posts !== 1 || deps !== 1)
		fail(`wrangler did not take the versions API path: PUT script ${puts}x, POST versions ${posts}x, POST deployments ${deps}x ` +
			"(expected 0, 1, 1; wrangler uses PUT when GET /workers/scripts lacks migration_tag \"v1\" or GET /workers/services fails)");
	await expectW1Bindings("hello again");
	const now = await deployedVersionIds();
	assert(now.length === 1 && now[0].endsWith("@100") && now[0] !== prev[0],
		`latest deployment is ${now.join(", ")} (before: ${prev.join(", ")}), expected a new version at 100%`);
	const { result: sched } = await apiOk("GET", `/workers/scripts/${W}/schedules`);
	assert(sched && sched.schedules && sched.schedules.length === 1, `schedules after redeploy: ${JSON.stringify(sched)}`);
}, { needs: ["wrangler-deploy-all-bindings"] });

await scenario("wrangler-versions-upload-deploy", async () => {
	const prev = await deployedVersionIds();
	edit(path.join(dir, "wrangler.toml"), /GREETING = "[^"]*"/, 'GREETING = "v3"');
	const up = await expectClientOk(wrangler(["versions", "upload"], { cwd: dir }));
	const m = up.out.match(/Worker Version ID:\s*([0-9a-f-]{8,})/);
	assert(m, "wrangler versions upload printed no 'Worker Version ID: <id>'");
	const vid = m[1];
	/* Uploaded, not deployed: what is live has not changed. */
	const still = await deployedVersionIds();
	assert(still.join() === prev.join(), `versions upload changed the deployment: ${prev.join()} -> ${still.join()}`);
	const { result: vs } = await apiOk("GET", `/workers/scripts/${W}/versions`);
	const items = vs && (vs.items || vs);
	assert(Array.isArray(items) && items.some((v) => v.id === vid),
		`GET /workers/scripts/${W}/versions does not list the uploaded version ${vid}`);
	/* The version carries its own bindings (TS VersionGetResponse.resources.bindings). */
	const { result: ver } = await apiOk("GET", `/workers/scripts/${W}/versions/${vid}`);
	const vb = ver && ver.resources && ver.resources.bindings;
	assert(Array.isArray(vb), `GET /workers/scripts/${W}/versions/${vid}: no result.resources.bindings (${JSON.stringify(ver).slice(0, 200)})`);
	expectBinding(vb, "GREETING", { type: "plain_text", text: "v3" }, `GET /workers/scripts/${W}/versions/${vid}`);

	await expectClientOk(wrangler(["versions", "deploy", `${vid}@100`, "--yes"], { cwd: dir }));
	const now = await deployedVersionIds();
	assert(now.length === 1 && now[0] === `${vid}@100`, `latest deployment is ${now.join(", ")}, expected ${vid}@100`);
	const b2 = await settingsBindings(W);
	const g2 = b2.find((x) => x.name === "GREETING");
	assert(g2 && g2.text === "v3", `after versions deploy, GET .../settings shows GREETING ${JSON.stringify(g2 && g2.text)}, expected the deployed version's "v3"`);
}, { needs: ["wrangler-deploy-all-bindings"] });

await scenario("wrangler-versions-and-deployments-list", async () => {
	const live = (await deployedVersionIds())[0].split("@")[0];
	const v = await expectClientOk(wrangler(["versions", "list", "--json"], { cwd: dir }));
	let versions;
	try {
		versions = JSON.parse(v.out.slice(v.out.indexOf("[")));
	} catch {
		fail(`wrangler versions list --json printed no JSON array: ${v.out.slice(0, 160)}`);
	}
	const { result: api } = await apiOk("GET", `/workers/scripts/${W}/versions`);
	const items = api.items || [];
	assert(versions.length === items.length && items.length >= 3,
		`wrangler versions list printed ${versions.length} versions, GET .../versions has ${items.length} (expected >= 3 after three uploads)`);
	assert(versions.some((x) => x.id === live), `wrangler versions list does not show the deployed version ${live}`);
	const d = await expectClientOk(wrangler(["deployments", "list", "--json"], { cwd: dir }));
	let deps;
	try {
		deps = JSON.parse(d.out.slice(d.out.indexOf("[")));
	} catch {
		fail(`wrangler deployments list --json printed no JSON array: ${d.out.slice(0, 160)}`);
	}
	assert(deps.length >= 3, `wrangler deployments list printed ${deps.length} deployments, expected >= 3`);
	const newest = deps.reduce((a, b) => (String(a.created_on) >= String(b.created_on) ? a : b));
	assert(newest.versions && newest.versions.some((x) => x.version_id === live),
		`the newest deployment wrangler lists (${JSON.stringify(newest).slice(0, 160)}) does not carry the live version ${live}`);
}, { needs: ["wrangler-deploy-all-bindings"] });

await scenario("wrangler-deploy-migration-v2-keeps-secret", async () => {
	/* A secret set outside the config must survive the PUT path too. */
	await expectClientOk(wrangler(["secret", "put", "W1_SECRET"], { cwd: dir, input: "w1-secret-value" }));
	const toml = path.join(dir, "wrangler.toml");
	edit(toml, '[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["Counter"]\n',
		'[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["Counter"]\n\n' +
		'[[migrations]]\ntag = "v2"\nnew_sqlite_classes = ["Tally"]\n\n' +
		'[[durable_objects.bindings]]\nname = "TALLY"\nclass_name = "Tally"\n');
	edit(path.join(dir, "src/index.js"), "export default {", "export class Tally {\n\tfetch() {\n\t\treturn new Response(\"tally\");\n\t}\n}\n\nexport default {");
	const before = await simStats();
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));
	const after = await simStats();
	const puts = routeCount(after, "PUT", /\/workers\/scripts\/[^/]+$/) - routeCount(before, "PUT", /\/workers\/scripts\/[^/]+$/);
	assert(puts === 1, `a deploy with a pending migration must upload with PUT (wrangler sends old_tag "v1", new_tag "v2"); saw ${puts} PUTs`);
	const { result: scripts } = await apiOk("GET", "/workers/scripts");
	const me = scripts.find((x) => x.id === W);
	assert(me && me.migration_tag === "v2", `GET /workers/scripts: ${W}.migration_tag is ${JSON.stringify(me && me.migration_tag)}, expected "v2"`);
	const { result: dos } = await apiOk("GET", "/workers/durable_objects/namespaces?per_page=100");
	const classes = (dos || []).filter((n) => n.script === W).map((n) => n.class).sort();
	assert(classes.join() === "Counter,Tally", `Durable Object namespaces of ${W}: [${classes}], expected [Counter,Tally]`);
	const b = await settingsBindings(W);
	expectBinding(b, "TALLY", { type: "durable_object_namespace", class_name: "Tally" }, `GET /workers/scripts/${W}/settings`);
	expectBinding(b, "W1_SECRET", { type: "secret_text" }, `after a PUT deploy that does not mention it, GET /workers/scripts/${W}/settings`);
	const { result: secrets } = await apiOk("GET", `/workers/scripts/${W}/secrets`);
	assert(secrets.some((x) => x.name === "W1_SECRET"), `GET /workers/scripts/${W}/secrets lost W1_SECRET after the PUT deploy`);
}, { needs: ["wrangler-deploy-all-bindings"] });

await scenario("wrangler-secret-bulk-keeps-bindings", async () => {
	/*
	 * "wrangler secret bulk" PATCHes .../settings (multipart, one "settings"
	 * part) with every existing binding reduced to {type, name} (keep it as
	 * it is) plus the new secret_text bindings.
	 */
	const file = path.join(dir, "bulk.json");
	fs.writeFileSync(file, JSON.stringify({ BULK_A: "bulk-a-value", BULK_B: "bulk-b-value" }));
	const before = await settingsBindings(W);
	await expectClientOk(wrangler(["secret", "bulk", file], { cwd: dir }));
	const b = await settingsBindings(W);
	const where = `after 'wrangler secret bulk', GET /workers/scripts/${W}/settings`;
	for (const old of before.filter((x) => x.type !== "secret_text")) {
		const now = b.find((x) => x.name === old.name);
		assert(now && JSON.stringify(now) === JSON.stringify(old),
			`${where}: binding ${old.name} changed from ${JSON.stringify(old)} to ${JSON.stringify(now)} (a {type, name} binding in PATCH settings keeps the existing one)`);
	}
	for (const name of ["BULK_A", "BULK_B"])
		expectBinding(b, name, { type: "secret_text" }, where);
	const { result: secrets } = await apiOk("GET", `/workers/scripts/${W}/secrets`);
	const names = secrets.map((x) => x.name).sort();
	for (const name of ["BULK_A", "BULK_B"])
		assert(names.includes(name), `GET /workers/scripts/${W}/secrets lacks ${name} after 'wrangler secret bulk' (has ${names})`);
	const text = JSON.stringify(await simState());
	assert(!text.includes("bulk-a-value"), "GET /__sim/state shows a bulk secret's value in plain text");
}, { needs: ["wrangler-deploy-all-bindings"] });

summary();
