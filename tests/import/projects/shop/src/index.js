export class Counter {
	constructor(state) { this.state = state; }
	async fetch() { return new Response("1"); }
}
export default {
	async fetch(req, env) { return new Response(env.STAGE); },
	async queue(batch) { for (const m of batch.messages) m.ack(); },
	async scheduled() {},
};
