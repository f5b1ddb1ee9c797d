import banner from "./banner.txt";
export default {
  async fetch(req, env) { return new Response(banner + env.STAGE); },
  async scheduled() {},
  async queue() {},
};
