/*
 * wrangler 4.86.0 resource commands: kv namespace create (through wrangler's
 * bundled SDK), r2 bucket create and queues create (JSON sent as
 * text/plain), d1 create; each resource must then exist exactly once.
 */
import {
	apiOk, assert, expectClientOk, findDeep, listAll, scenario, simState, summary, wrangler,
} from "../lib/sim.mjs";

async function inState(pred, what) {
	const state = await simState();
	assert(findDeep(state, pred).length, `GET /__sim/state: no ${what}`);
}

await scenario("wrangler-kv-namespace-create", async () => {
	const res = await expectClientOk(wrangler(["kv", "namespace", "create", "conf-kv"]));
	const all = (await listAll("/storage/kv/namespaces")).filter((n) => n.title === "conf-kv");
	assert(all.length === 1, `GET /storage/kv/namespaces: ${all.length} namespaces titled 'conf-kv', expected 1`);
	assert(res.out.includes(all[0].id), `wrangler did not print the new namespace id ${all[0].id}`);
	const { result } = await apiOk("GET", `/storage/kv/namespaces/${all[0].id}`);
	assert(result && result.title === "conf-kv", `GET /storage/kv/namespaces/${all[0].id}: ${JSON.stringify(result)}`);
	await inState((o) => o.title === "conf-kv", "KV namespace titled 'conf-kv'");
	/* A second namespace with the same title is refused (10014). */
	const again = wrangler(["kv", "namespace", "create", "conf-kv"]);
	assert(again.code !== 0, "a second 'wrangler kv namespace create conf-kv' succeeded; cfsim must refuse a duplicate title with code 10014");
	const n = (await listAll("/storage/kv/namespaces")).filter((x) => x.title === "conf-kv").length;
	assert(n === 1, `after a duplicate create there are ${n} namespaces titled 'conf-kv'`);
});

await scenario("wrangler-r2-bucket-create", async () => {
	await expectClientOk(wrangler(["r2", "bucket", "create", "conf-bucket"]));
	const all = (await listAll("/r2/buckets", "buckets")).filter((b) => b.name === "conf-bucket");
	assert(all.length === 1, `GET /r2/buckets: ${all.length} buckets named 'conf-bucket', expected 1`);
	const { result } = await apiOk("GET", "/r2/buckets/conf-bucket");
	assert(result && result.name === "conf-bucket", `GET /r2/buckets/conf-bucket: ${JSON.stringify(result)}`);
	await inState((o) => o.name === "conf-bucket", "R2 bucket named 'conf-bucket'");
});

await scenario("wrangler-d1-create", async () => {
	const res = await expectClientOk(wrangler(["d1", "create", "conf-db"]));
	const all = (await listAll("/d1/database")).filter((d) => d.name === "conf-db");
	assert(all.length === 1, `GET /d1/database: ${all.length} databases named 'conf-db', expected 1`);
	assert(res.out.includes(all[0].uuid), `wrangler did not print the new database uuid ${all[0].uuid}`);
	const { result } = await apiOk("GET", `/d1/database/${all[0].uuid}`);
	assert(result && result.name === "conf-db", `GET /d1/database/${all[0].uuid}: ${JSON.stringify(result)}`);
	await inState((o) => o.name === "conf-db", "D1 database named 'conf-db'");
	/* A second create of the same name is refused with 7502. */
	const again = wrangler(["d1", "create", "conf-db"]);
	assert(again.code !== 0, "a second 'wrangler d1 create conf-db' succeeded; cfsim must refuse with code 7502");
	const n = (await listAll("/d1/database")).filter((d) => d.name === "conf-db").length;
	assert(n === 1, `after a duplicate create there are ${n} databases named 'conf-db'`);
});

await scenario("wrangler-queues-create", async () => {
	await expectClientOk(wrangler(["queues", "create", "conf-queue"]));
	const { result } = await apiOk("GET", "/queues?page=1&per_page=100");
	const all = (result || []).filter((q) => q.queue_name === "conf-queue");
	assert(all.length === 1, `GET /queues: ${all.length} queues named 'conf-queue', expected 1`);
	assert(all[0].queue_id, `GET /queues: conf-queue has no queue_id (${JSON.stringify(all[0])})`);
	const one = await apiOk("GET", `/queues/${all[0].queue_id}`);
	assert(one.result && one.result.queue_name === "conf-queue", `GET /queues/${all[0].queue_id}: ${JSON.stringify(one.result)}`);
	await inState((o) => o.queue_name === "conf-queue" || o.name === "conf-queue", "queue named 'conf-queue'");
	/* wrangler's own list follows result_info and must show it. */
	const list = await expectClientOk(wrangler(["queues", "list"]));
	assert(list.out.includes("conf-queue"), "wrangler queues list does not show conf-queue");
});

await scenario("wrangler-resource-deletes", async () => {
	const kv = (await listAll("/storage/kv/namespaces")).find((n) => n.title === "conf-kv");
	assert(kv, "no 'conf-kv' namespace to delete (wrangler-kv-namespace-create failed?)");
	await expectClientOk(wrangler(["kv", "namespace", "delete", "--namespace-id", kv.id, "-y"]));
	await expectClientOk(wrangler(["r2", "bucket", "delete", "conf-bucket"]));
	await expectClientOk(wrangler(["d1", "delete", "conf-db", "-y"]));
	await expectClientOk(wrangler(["queues", "delete", "conf-queue"]));
	const gone = [
		["KV namespace conf-kv", (await listAll("/storage/kv/namespaces")).some((n) => n.title === "conf-kv")],
		["R2 bucket conf-bucket", (await listAll("/r2/buckets", "buckets")).some((b) => b.name === "conf-bucket")],
		["D1 database conf-db", (await listAll("/d1/database")).some((d) => d.name === "conf-db")],
		["queue conf-queue", (await apiOk("GET", "/queues?page=1&per_page=100")).result.some((q) => q.queue_name === "conf-queue")],
	].filter(([, still]) => still).map(([what]) => what);
	assert(!gone.length, `still listed after the wrangler delete commands: ${gone.join(", ")}`);
}, { needs: ["wrangler-kv-namespace-create", "wrangler-r2-bucket-create", "wrangler-d1-create", "wrangler-queues-create"] });

await scenario("wrangler-wrong-token-rejected", async () => {
	const res = wrangler(["kv", "namespace", "create", "conf-intruder"], { extraEnv: { CLOUDFLARE_API_TOKEN: "not-the-token" } });
	assert(res.code !== 0, "wrangler with a wrong API token succeeded; cfsim must refuse it (cfsim runs with --token)");
	const all = (await listAll("/storage/kv/namespaces")).filter((n) => n.title === "conf-intruder");
	assert(all.length === 0, "a request with a wrong token created a KV namespace");
});

summary();
