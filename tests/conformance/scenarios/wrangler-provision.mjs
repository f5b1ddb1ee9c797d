/*
 * wrangler 4.86.0: w2's KV, D1 and R2 bindings have no ids, so the first
 * deploy creates them ("<worker>-<binding>") and binds their new ids; the
 * redeploy sends "inherit" bindings, which must resolve to the same
 * resources without making new ones.
 */
import {
	api, apiOk, assert, describe, errorLines, expectBinding, expectClientOk, fixture, listAll, scenario, settingsBindings,
	simState, summary, wrangler, findDeep,
} from "../lib/sim.mjs";

const W = "prov-worker";
let dir;
let made = {};

async function provisioned() {
	const kv = (await listAll("/storage/kv/namespaces")).filter((n) => n.title === `${W}-cache`);
	const d1 = (await listAll("/d1/database")).filter((d) => d.name === `${W}-db`);
	const r2 = (await listAll("/r2/buckets", "buckets")).filter((b) => b.name === `${W}-bucket`);
	return { kv, d1, r2 };
}

await scenario("wrangler-deploy-autoprovision", async () => {
	dir = fixture("w2");
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));
	const { kv, d1, r2 } = await provisioned();
	assert(kv.length === 1, `${kv.length} KV namespaces titled '${W}-cache', expected 1`);
	assert(d1.length === 1, `${d1.length} D1 databases named '${W}-db', expected 1`);
	assert(r2.length === 1, `${r2.length} R2 buckets named '${W}-bucket', expected 1`);
	made = { kv: kv[0].id, d1: d1[0].uuid };
	const b = await settingsBindings(W);
	const where = `GET /workers/scripts/${W}/settings`;
	expectBinding(b, "CACHE", { type: "kv_namespace", namespace_id: made.kv }, where);
	expectBinding(b, "DB", [{ type: "d1", id: made.d1 }, { type: "d1", database_id: made.d1 }], where);
	expectBinding(b, "BUCKET", { type: "r2_bucket", bucket_name: `${W}-bucket` }, where);
	expectBinding(b, "COUNTER", { type: "durable_object_namespace", class_name: "Counter" }, where);
	const state = await simState();
	assert(findDeep(state, (o) => o.title === `${W}-cache`).length, `GET /__sim/state: no KV namespace titled '${W}-cache'`);
});

await scenario("wrangler-redeploy-inherit-bindings", async () => {
	await expectClientOk(wrangler(["deploy"], { cwd: dir }));
	const { kv, d1, r2 } = await provisioned();
	assert(kv.length === 1 && d1.length === 1 && r2.length === 1,
		`redeploy made duplicates: ${kv.length} KV, ${d1.length} D1, ${r2.length} R2 (expected 1 each)`);
	const b = await settingsBindings(W);
	const where = `after the redeploy (inherit bindings), GET /workers/scripts/${W}/settings`;
	expectBinding(b, "CACHE", { type: "kv_namespace", namespace_id: made.kv }, where);
	expectBinding(b, "DB", [{ type: "d1", id: made.d1 }, { type: "d1", database_id: made.d1 }], where);
	expectBinding(b, "BUCKET", { type: "r2_bucket", bucket_name: `${W}-bucket` }, where);
	assert(!b.some((x) => x.type === "inherit"), `${where}: an 'inherit' binding was stored as such instead of being resolved`);
}, { needs: ["wrangler-deploy-autoprovision"] });

await scenario("wrangler-deploy-creates-missing-r2-bucket", async () => {
	await apiOk("POST", "/queues", { queue_name: "extra-queue" });
	const d = fixture("extra", { BUCKET: "named-bucket", QUEUE: "extra-queue" });
	const r = await api("GET", "/r2/buckets/named-bucket");
	assert(r.status === 404 && r.json && r.json.errors && r.json.errors.some((e) => e.code === 10006),
		`a missing bucket must be 404 with code 10006 (wrangler provisions only then): ${describe(r)}`);
	await expectClientOk(wrangler(["deploy"], { cwd: d }));
	const r2 = (await listAll("/r2/buckets", "buckets")).filter((b) => b.name === "named-bucket");
	assert(r2.length === 1, `${r2.length} R2 buckets named 'named-bucket' after the deploy, expected 1`);
	const b = await settingsBindings("extra-worker");
	expectBinding(b, "BUCKET", { type: "r2_bucket", bucket_name: "named-bucket" }, "GET /workers/scripts/extra-worker/settings");
	expectBinding(b, "Q", { type: "queue", queue_name: "extra-queue" }, "GET /workers/scripts/extra-worker/settings");
});

await scenario("wrangler-deploy-missing-queue-refused", async () => {
	/* Another queue exists, so GET /queues?name= must really filter by name. */
	await apiOk("POST", "/queues", { queue_name: "decoy-queue" });
	const d = fixture("extra", { BUCKET: "ghost-bucket", QUEUE: "ghost-queue" }, "extra-ghost");
	const res = wrangler(["deploy", "--name", "ghost-worker"], { cwd: d });
	assert(res.code !== 0, "wrangler deployed a producer for a queue that does not exist (GET /queues?name=ghost-queue must return no queue)");
	assert(/Queue "ghost-queue" does not exist/.test(res.out),
		`wrangler failed, but not because the queue is missing: ${errorLines(res.out)[0]}`);
	const r = await api("GET", "/workers/scripts/ghost-worker/settings");
	assert(r.status === 404, `the refused deploy left a script behind: ${describe(r)}`);
});

summary();
