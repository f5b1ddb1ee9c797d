export class Counter {} export class Room {} export class Legacy {}
export default { async fetch() { return new Response("ok"); } };
