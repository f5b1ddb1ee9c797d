import { Hono } from "hono";
import { env } from "cloudflare:workers";
const app = new Hono();
export default app;
