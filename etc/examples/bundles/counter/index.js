// Owns the Counter and RateLimiter Durable Objects and the Onboarding workflow.
import { DurableObject, WorkflowEntrypoint } from "cloudflare:workers";

export class Counter extends DurableObject {
  async fetch() {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return new Response(String(n));
  }
}

export class RateLimiter extends DurableObject {
  async allow() {
    return true;
  }
}

export class Onboarding extends WorkflowEntrypoint {
  async run(event, step) {
    await step.do("welcome", async () => ({ user: event.payload }));
  }
}

export default {
  async fetch(request, env) {
    return env.COUNTER.get(env.COUNTER.idFromName("global")).fetch(request);
  },
};
