import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject {}
class A {}
export { A as Limiter };
// export class C
const s = `export class T ${1}`;
export default { fetch() {} };
