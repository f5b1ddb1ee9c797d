// Runs on the worker's cron triggers and queues a report job.
export default {
  async scheduled(controller, env) {
    await env.JOBS.send({ report: controller.cron, to: env.REPORT_TO });
  },
};
