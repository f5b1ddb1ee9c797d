/* fuzz-cfapi-envelope.c: libFuzzer target for the pure half of the
 * Cloudflare client: envelope decoding, list-page extraction, pagination
 * arithmetic and the Ratelimit/Retry-After header parsers. Whatever the
 * API (or a man in the middle) sends, decoding must never crash, leak or
 * read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfapi-decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(cf_envelope_freep) CfEnvelope *env = NULL;
        _cleanup_free_ char *text = NULL, *summary = NULL;
        uint64_t a, b;
        long status;

        if (size == 0 || size > 1 << 20)
                return 0;
        /* First byte picks the HTTP status, so success and failure paths
         * are both reached. */
        status = (long[]) { 200, 201, 400, 404, 409, 429, 500, 503 }[data[0] % 8];

        if (cf_envelope_decode(status, (const char *) data + 1, size - 1, &env) == 0) {
                json_object *items = NULL;

                (void) cf_errno_from_status(env->http_status, env->success, env->errors, env->n_errors);
                summary = cf_errors_summary(env->http_status, env->errors, env->n_errors);
                if (cf_result_items(env->result, NULL, &items) == 0 && items)
                        (void) cf_page_has_more(env->result_info, 1, 50, json_object_array_length(items));
                (void) cf_result_items(env->result, "buckets", &items);
                (void) cf_cursor_next(env->result_info);
                (void) cf_page_has_more(env->result_info, 3, 20, 0);
        }

        /* The same bytes as header values. */
        text = strndup((const char *) data, size);
        if (!text)
                return 0;
        (void) cf_ratelimit_parse(text, &a, &b);
        (void) cf_retry_after_parse(text, UINT64_C(1795426429000000), &a);
        return 0;
}
