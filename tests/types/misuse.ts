// Must NOT compile: proves the generated types are precise (tsc.sh expects
// tsc to reject this file).
import type { Env } from "./env";

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (env.STAGE === "staging") {
      // STAGE is the literal type "production": this comparison is an error.
      return new Response("never");
    }
    await env.SESSIONS.send("not a queue");
    // AUTH_RPC is Service<AuthRpc>: it has check(), not revoke().
    await env.AUTH_RPC.revoke("token");
    return new Response(env.LIMITS.rpm.toUpperCase());
  },
};
