export class Counter { constructor(state) { this.state = state; } async fetch() { return new Response("1"); } }
export class Onboarding {}
export default { fetch() { return new Response("counter"); } };
