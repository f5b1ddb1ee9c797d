const x: number = 1; export default { async fetch() { return new Response(String(x)); } };
