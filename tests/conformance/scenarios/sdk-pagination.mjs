/*
 * The official cloudflare SDK 6.5.0: creates enough of every resource type
 * for several pages, then lists each with the SDK's auto-pagination (which
 * asks for page+1 until a page comes back empty) and checks every resource
 * comes back exactly once.  Lists the SDK fetches in one call (workers
 * scripts, queues, R2 buckets) are checked for completeness; R2's cursor
 * pagination, which the SDK does not follow, is walked through the API.
 */
import { createRequire } from "node:module";
import {
	ACCOUNT, BASE, TOKEN, apiOk, assert, fail, routeCount, scenario, simStats, summary,
} from "../lib/sim.mjs";

const require = createRequire(`${process.env.CONFORMANCE_NODE_MODULES}/`);
const Cloudflare = require("cloudflare");
const { toFile } = Cloudflare;
const cf = new Cloudflare({ apiToken: TOKEN, baseURL: BASE, maxRetries: 0, timeout: 15000 });
const account_id = ACCOUNT;
const N = 12;         /* of each paginated kind */
const PER_PAGE = 5;   /* so N spans three pages and a fourth, empty one */
const names = (prefix, n = N) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(2, "0")}`);

/* Calls the SDK; a rejected call becomes a precise failure. */
async function sdk(what, fn) {
	try {
		return await fn();
	} catch (e) {
		const errs = e && e.errors ? ` errors=${JSON.stringify(e.errors)}` : "";
		fail(`SDK ${what}: ${e && e.status ? `HTTP ${e.status} ` : ""}${e && e.message ? e.message : e}${errs}`.slice(0, 400));
	}
}

/*
 * Lists through the SDK's async iterator (auto-pagination) with a request
 * cap, and checks the keys against want: all there, none twice.  route is
 * the stats route regex, to count the pages the SDK asked for.
 */
async function expectListed(what, iterate, key, want, route, minPages) {
	const before = await simStats();
	const seen = [];
	await sdk(`${what} list`, async () => {
		for await (const item of iterate()) {
			seen.push(item[key]);
			if (seen.length > want.length * 3)
				fail(`SDK ${what} list: over ${want.length * 3} items; pagination does not end (is ?page= ignored?)`);
		}
	});
	const after = await simStats();
	const pages = routeCount(after, "GET", route) - routeCount(before, "GET", route);
	const dup = seen.filter((k, i) => seen.indexOf(k) !== i);
	const missing = want.filter((k) => !seen.includes(k));
	assert(!dup.length, `SDK ${what} list returned duplicates: ${[...new Set(dup)].join(", ")} (${seen.length} items in ${pages} requests)`);
	assert(!missing.length, `SDK ${what} list is missing ${missing.length} of ${want.length}: ${missing.slice(0, 5).join(", ")} (got ${seen.length} in ${pages} requests)`);
	assert(pages >= minPages, `SDK ${what} list made ${pages} requests, expected at least ${minPages} pages of ${PER_PAGE}`);
}

const module = (body) => toFile(Buffer.from(body), "index.mjs", { type: "application/javascript+module" });

await scenario("sdk-kv-namespaces-pages", async () => {
	const ids = [];
	for (const title of names("sdk-kv"))
		ids.push((await sdk("kv.namespaces.create", () => cf.kv.namespaces.create({ account_id, title }))).id);
	await expectListed("kv.namespaces", () => cf.kv.namespaces.list({ account_id, per_page: PER_PAGE }),
		"id", ids, /\/storage\/kv\/namespaces$/, 3);
});

await scenario("sdk-d1-databases-pages", async () => {
	const ids = [];
	for (const name of names("sdk-db"))
		ids.push((await sdk("d1.database.create", () => cf.d1.database.create({ account_id, name }))).uuid);
	await expectListed("d1.database", () => cf.d1.database.list({ account_id, per_page: PER_PAGE }),
		"uuid", ids, /\/d1\/database$/, 3);
});

await scenario("sdk-r2-buckets", async () => {
	const want = names("sdk-bucket");
	for (const name of want)
		await sdk("r2.buckets.create", () => cf.r2.buckets.create({ account_id, name }));
	const got = await sdk("r2.buckets.list", () => cf.r2.buckets.list({ account_id }));
	const listed = (got && got.buckets || []).map((b) => b.name).filter((n) => n.startsWith("sdk-bucket-"));
	assert(listed.length === N && want.every((n) => listed.includes(n)),
		`SDK r2.buckets.list returned ${listed.length} of ${N} buckets (result.buckets: ${JSON.stringify(got).slice(0, 160)})`);
	/* Cursor pagination, walked by hand: per_page, then result_info.cursor. */
	const seen = [];
	let cursor = "";
	for (let i = 0; i < 10; i++) {
		const q = `per_page=${PER_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
		const { result, info } = await apiOk("GET", `/r2/buckets?${q}`);
		seen.push(...(result.buckets || []).map((b) => b.name));
		assert((result.buckets || []).length <= PER_PAGE, `GET /r2/buckets?${q} returned ${result.buckets.length} buckets, over per_page`);
		cursor = info && info.cursor;
		if (!cursor)
			break;
	}
	const mine = seen.filter((n) => n.startsWith("sdk-bucket-"));
	assert(mine.length === N && new Set(mine).size === N,
		`walking GET /r2/buckets by result_info.cursor gave ${mine.length} buckets (${new Set(mine).size} distinct), expected ${N}`);
});

await scenario("sdk-queues", async () => {
	const want = names("sdk-queue");
	for (const queue_name of want)
		await sdk("queues.create", () => cf.queues.create({ account_id, queue_name }));
	await expectListed("queues", () => cf.queues.list({ account_id }), "queue_name", want, /\/queues$/, 1);
});

await scenario("sdk-secrets-store-pages", async () => {
	const stores = [];
	for (const name of names("sdk-store", 3)) {
		try {
			stores.push(await cf.secretsStore.stores.create({ account_id, name }));
		} catch (e) {
			/* Cloudflare caps stores per account (1003 maximum_stores_exceeded). */
			if (stores.length && e.errors && e.errors.some((x) => x.code === 1003))
				break;
			await sdk("secretsStore.stores.create", () => Promise.reject(e));
		}
	}
	const store = Array.isArray(stores[0]) ? stores[0][0] : stores[0];
	assert(store && store.id, `SDK secretsStore.stores.create returned no id: ${JSON.stringify(stores[0])}`);
	await expectListed("secretsStore.stores", () => cf.secretsStore.stores.list({ account_id, per_page: 1 }),
		"id", stores.map((s) => (Array.isArray(s) ? s[0] : s).id), /\/secrets_store\/stores$/, stores.length);
	const want = [];
	for (const name of names("SDK_SECRET")) {
		const made = await sdk("secretsStore.stores.secrets.create", async () => {
			const out = [];
			for await (const s of cf.secretsStore.stores.secrets.create(store.id, {
				account_id, body: [{ name, value: `value-of-${name}`, scopes: ["workers"] }],
			}))
				out.push(s);
			return out;
		});
		assert(made.length === 1 && made[0].id, `secrets create returned ${JSON.stringify(made)}`);
		assert(made[0].value === undefined, "secrets create returned the secret's value");
		want.push(made[0].id);
	}
	await expectListed("secretsStore.stores.secrets", () => cf.secretsStore.stores.secrets.list(store.id, { account_id, per_page: PER_PAGE }),
		"id", want, /\/secrets_store\/stores\/[^/]+\/secrets$/, 3);
});

await scenario("sdk-workers-scripts-and-do-namespaces", async () => {
	/* Six scripts own two Durable Object classes each: twelve namespaces. */
	const scripts = names("sdk-worker", 6);
	const classes = [];
	for (const [i, name] of scripts.entries()) {
		const cls = [`Alpha${i}`, `Beta${i}`];
		classes.push(...cls.map((c) => `${name}/${c}`));
		const code = cls.map((c) => `export class ${c} { fetch() { return new Response("${c}"); } }\n`).join("") +
			"export default { fetch() { return new Response('ok'); } };\n";
		await sdk("workers.scripts.update", async () => cf.workers.scripts.update(name, {
			account_id,
			metadata: {
				main_module: "index.mjs",
				compatibility_date: "2025-01-01",
				bindings: cls.map((c) => ({ type: "durable_object_namespace", name: c.toUpperCase(), class_name: c })),
				migrations: { new_tag: "v1", new_sqlite_classes: cls },
			},
			files: [await module(code)],
		}));
	}
	await expectListed("workers.scripts", () => cf.workers.scripts.list({ account_id }), "id", scripts, /\/workers\/scripts$/, 1);
	const before = await simStats();
	const seen = [];
	await sdk("durableObjects.namespaces list", async () => {
		for await (const ns of cf.durableObjects.namespaces.list({ account_id, per_page: PER_PAGE })) {
			seen.push(`${ns.script}/${ns.class}`);
			if (seen.length > 100)
				fail("SDK durableObjects.namespaces list: over 100 items; pagination does not end");
		}
	});
	const pages = routeCount(await simStats(), "GET", /\/durable_objects\/namespaces$/) -
		routeCount(before, "GET", /\/durable_objects\/namespaces$/);
	const missing = classes.filter((c) => !seen.includes(c));
	const dup = seen.filter((k, i) => seen.indexOf(k) !== i);
	assert(!dup.length, `SDK durableObjects.namespaces list returned duplicates: ${dup.join(", ")}`);
	assert(!missing.length, `SDK durableObjects.namespaces list is missing ${missing.length} of ${classes.length}: ${missing.slice(0, 4).join(", ")} (got ${seen.length}: ${seen.slice(0, 4).join(", ")})`);
	assert(pages >= 3, `SDK durableObjects.namespaces list made ${pages} requests, expected at least 3 pages of ${PER_PAGE}`);
});

/*
 * Audit Logs v2 through the SDK: since and before are required (a call
 * without before is refused), and the SDK's auto-pagination follows the
 * cursor where it reads it (result_info.cursors.after).  Every write of
 * the scenarios above is an entry; limit 5 spans several pages.
 */
await scenario("sdk-audit-logs-pages", async () => {
	const since = "2000-01-01T00:00:00Z", before = "2100-01-01T00:00:00Z";
	const seen = [];
	const t0 = await simStats();
	await sdk("accounts.logs.audit.list", async () => {
		for await (const e of cf.accounts.logs.audit.list({ account_id, since, before, limit: PER_PAGE })) {
			seen.push(e.id);
			if (seen.length > 2000)
				fail("SDK accounts.logs.audit.list: over 2000 entries; the cursor does not end");
		}
	});
	const t1 = await simStats();
	const pages = routeCount(t1, "GET", /\/logs\/audit$/) - routeCount(t0, "GET", /\/logs\/audit$/);
	const writes = t0.writes;
	assert(seen.length === writes, `SDK audit list returned ${seen.length} entries, cfsim logged ${writes} writes`);
	assert(new Set(seen).size === seen.length, "SDK audit list returned an entry twice");
	assert(pages >= Math.ceil(writes / PER_PAGE), `SDK audit list made ${pages} requests for ${writes} entries of ${PER_PAGE} a page`);
	let refused = null;
	try {
		await cf.accounts.logs.audit.list({ account_id, since });
	} catch (e) {
		refused = e;
	}
	assert(refused && refused.status === 400, `an audit list without before was not refused with 400 (${refused && refused.status})`);
});

summary();
