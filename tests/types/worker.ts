// The api example worker (etc/examples/workers/api.yaml), written against
// the Env that `binderyd types` generates: it touches every binding with
// the API its @cloudflare/workers-types type has, so a wrong type fails
// to compile. tests/types/tsc.sh copies it next to the generated env.ts.
import type { Env } from "./env";
import { env as moduleEnv } from "cloudflare:workers";

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    // Plain text and JSON vars have literal and shaped types.
    const stage: "production" = env.STAGE;
    const greeting: string = env.GREETING;
    const rpm: number = env.LIMITS.rpm + env.LIMITS.burst;
    const paths: string[] = env.LIMITS.paths;
    // Secrets are strings.
    const key: string = env.API_KEY;

    // Storage.
    const session: string | null = await env.SESSIONS.get("id");
    await env.FLAGS.put("k", "v", { expirationTtl: 60 });
    await env.LEGACY.delete("old");
    const obj: R2ObjectBody | null = await env.UPLOADS.get("file");
    await env.ARCHIVE.put("copy", "data");
    const row = await env.DB.prepare("SELECT 1 AS one").first<{ one: number }>();
    await env.JOBS.send({ stage, rpm });

    // Durable Objects and services.
    const stub = env.COUNTER.get(env.COUNTER.idFromName("global"));
    const counted: Response = await stub.fetch(request);
    const authed: Response = await env.AUTH.fetch(request);
    const rpc: Response = await env.AUTH_RPC.fetch("https://auth/check");
    // The entrypoint's own methods, typed from its class (Service<AuthRpc>).
    const allowed: boolean = await env.AUTH_RPC.check("token");
    const page: Response = await env.BROWSER.fetch("https://browser/");

    // Secrets Store.
    const token: string = await env.TOKEN.get();
    const signing: string = await env.SIGNING_KEY.get();

    // Platform bindings.
    env.EVENTS.writeDataPoint({ blobs: [stage], doubles: [rpm], indexes: ["api"] });
    const models = await env.AI.models();
    const version: string = env.VERSION.id;
    const conn: string = env.PG.connectionString;
    const matches = await env.EMBEDDINGS.query([0.1, 0.2, 0.3], { topK: 3 });
    const instance = await env.ONBOARDING.create({ params: { user: "u1" } });

    // The global env from "cloudflare:workers" carries the same bindings.
    const fromModule: string | null = await moduleEnv.SESSIONS.get("id");

    ctx.waitUntil(Promise.resolve());
    return Response.json({
      greeting, paths, key: key.length, session, size: obj?.size, row, counted: counted.status,
      authed: authed.status, rpc: rpc.status, allowed, page: page.status, token: token.length,
      signing: signing.length, models: models.length, version, conn: conn.length,
      matches: matches.count, instance: instance.id, fromModule,
    });
  },
} satisfies ExportedHandler<Env>;
