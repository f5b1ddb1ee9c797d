/*
 * wrangler 4.86.0: w2's KV, D1 and R2 bindings have no ids, so the first
 * deploy creates them ("<worker>-<binding>") and binds their new ids; the
 * redeploy sends "inherit" bindings, which must resolve to the same
 * resources without making new ones.
 */
import {
	assert, expectBinding, expectClientOk, fixture, listAll, scenario, settingsBindings,
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

summary();
