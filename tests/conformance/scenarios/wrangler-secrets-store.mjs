/*
 * wrangler 4.86.0 "secrets-store ... --remote": the Secrets Store a
 * secrets_store_secret binding points at.  Values are write-only: cfsim
 * must never hand them back, and keeps only their sha256 in its state.
 */
import {
	apiOk, assert, expectClientOk, listAll, scenario, sha256, simState, summary, wrangler,
} from "../lib/sim.mjs";

let storeId;
let secretId;

async function secretsOf(store) {
	return listAll(`/secrets_store/stores/${store}/secrets`);
}

await scenario("wrangler-secrets-store-store-create", async () => {
	await expectClientOk(wrangler(["secrets-store", "store", "create", "conf-store", "--remote"]));
	const stores = (await listAll("/secrets_store/stores")).filter((s) => s.name === "conf-store");
	assert(stores.length === 1, `GET /secrets_store/stores: ${stores.length} stores named 'conf-store', expected 1`);
	storeId = stores[0].id;
	const list = await expectClientOk(wrangler(["secrets-store", "store", "list", "--remote"]));
	assert(list.out.includes(storeId), `wrangler secrets-store store list does not show ${storeId}`);
});

await scenario("wrangler-secrets-store-secret-create", async () => {
	await expectClientOk(wrangler(["secrets-store", "secret", "create", storeId, "--name", "api-key",
		"--value", "store-value-1", "--scopes", "workers", "--remote"]));
	const secrets = (await secretsOf(storeId)).filter((s) => s.name === "api-key");
	assert(secrets.length === 1, `GET .../secrets: ${secrets.length} secrets named 'api-key', expected 1`);
	secretId = secrets[0].id;
	assert(secrets[0].value === undefined, "GET .../secrets returns the secret's value");
	const list = await expectClientOk(wrangler(["secrets-store", "secret", "list", storeId, "--remote"]));
	assert(list.out.includes("api-key"), "wrangler secrets-store secret list does not show api-key");
	assert(!list.out.includes("store-value-1"), "wrangler secrets-store secret list shows the value");
	const text = JSON.stringify(await simState());
	assert(!text.includes("store-value-1"), "GET /__sim/state shows the store secret's value in plain text");
	assert(text.includes(`sha256:${sha256("store-value-1")}`), "GET /__sim/state has no sha256:<hex> of the store secret's value");
}, { needs: ["wrangler-secrets-store-store-create"] });

await scenario("wrangler-secrets-store-secret-update-delete", async () => {
	await expectClientOk(wrangler(["secrets-store", "secret", "update", storeId, "--secret-id", secretId,
		"--value", "store-value-2", "--remote"]));
	const text = JSON.stringify(await simState());
	assert(text.includes(`sha256:${sha256("store-value-2")}`), "after update, GET /__sim/state has no sha256:<hex> of the new value");
	await expectClientOk(wrangler(["secrets-store", "secret", "delete", storeId, "--secret-id", secretId, "--remote"]));
	const left = (await secretsOf(storeId)).filter((s) => s.id === secretId && s.status !== "deleted");
	assert(left.length === 0, `after delete, GET .../secrets still lists ${secretId}: ${JSON.stringify(left)}`);
}, { needs: ["wrangler-secrets-store-secret-create"] });

summary();
