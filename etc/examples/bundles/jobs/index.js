// Consumes the jobs queue and records each job in D1.
export default {
  async queue(batch, env) {
    for (const message of batch.messages) {
      await env.DB.prepare("INSERT INTO jobs (body) VALUES (?)")
        .bind(JSON.stringify(message.body))
        .run();
      message.ack();
    }
  },
};
