// The auth service: reached by the api worker through a service binding.
import { WorkerEntrypoint } from "cloudflare:workers";

export class AuthRpc extends WorkerEntrypoint {
  async check(token) {
    return (await this.env.SESSIONS.get(`token:${token}`)) !== null;
  }
}

export default {
  async fetch(request, env) {
    const token = request.headers.get("authorization") ?? "";
    const ok = (await env.SESSIONS.get(`token:${token}`)) !== null;
    return new Response(ok ? "ok" : "denied", { status: ok ? 200 : 401 });
  },
};
