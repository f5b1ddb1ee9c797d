/*
 * wrangler 4.86.0 page-number lists: "kv namespace list" asks for pages of
 * 100 and "d1 list" for pages of 10, each until a page comes back short; so
 * cfsim must honour page and per_page (up to 100 at least) exactly.
 */
import { apiOk, assert, expectClientOk, scenario, summary, wrangler } from "../lib/sim.mjs";

/* The JSON array a wrangler list command printed. */
function printedArray(res) {
	const start = res.out.indexOf("[");
	try {
		return JSON.parse(res.out.slice(start, res.out.lastIndexOf("]") + 1));
	} catch {
		return null;
	}
}

function expectAll(what, got, want) {
	assert(Array.isArray(got), `${what} printed no JSON array`);
	const dup = got.filter((k, i) => got.indexOf(k) !== i);
	const missing = want.filter((k) => !got.includes(k));
	assert(!dup.length, `${what} printed duplicates: ${[...new Set(dup)].slice(0, 5).join(", ")}`);
	assert(!missing.length, `${what} printed ${got.length} of ${want.length}; missing ${missing.slice(0, 5).join(", ")}`);
}

await scenario("wrangler-kv-namespace-list-pages", async () => {
	const want = [];
	for (let i = 0; i < 105; i++) {
		const title = `list-kv-${String(i).padStart(3, "0")}`;
		await apiOk("POST", "/storage/kv/namespaces", { title });
		want.push(title);
	}
	const res = await expectClientOk(wrangler(["kv", "namespace", "list"]));
	const got = printedArray(res);
	expectAll("wrangler kv namespace list (per_page=100, two pages)", got && got.map((n) => n.title), want);
});

await scenario("wrangler-d1-list-pages", async () => {
	const want = [];
	for (let i = 0; i < 25; i++) {
		const name = `list-db-${String(i).padStart(2, "0")}`;
		await apiOk("POST", "/d1/database", { name });
		want.push(name);
	}
	const res = await expectClientOk(wrangler(["d1", "list", "--json"]));
	const got = printedArray(res);
	expectAll("wrangler d1 list --json (per_page=10, three pages)", got && got.map((d) => d.name), want);
});

summary();
