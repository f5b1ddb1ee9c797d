// The api worker: routes a few paths to its bindings.
import { json, notFound } from "./lib/util.js";
import banner from "./banner.txt";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/":
        return new Response(`${banner}\nstage ${env.STAGE}\n`);
      case "/session":
        return json({ session: await env.SESSIONS.get(url.searchParams.get("id") ?? "") });
      case "/count": {
        const stub = env.COUNTER.get(env.COUNTER.idFromName("global"));
        return stub.fetch(request);
      }
      case "/enqueue":
        await env.JOBS.send({ at: Date.now() });
        return json({ queued: true });
      case "/auth":
        return env.AUTH.fetch(request);
      default:
        return notFound();
    }
  },
};
