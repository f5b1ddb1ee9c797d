export function json(value, status = 200) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export function notFound() {
  return json({ error: "not found" }, 404);
}
