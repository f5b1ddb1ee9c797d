/* store.c: the dispatchers of the storage seam (store.h). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int store_load(Store *s, store_record_fn fn, void *userdata, char **reterr) {
        assert(s && s->ops && fn);
        return s->ops->load(s->impl, fn, userdata, reterr);
}

int store_commit(Store *s, const StoreChange *changes, size_t n, char **reterr) {
        assert(s && s->ops);
        assert(changes || n == 0);
        if (!s->writable)
                return -EROFS;
        if (n == 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!store_key_is_valid(changes[i].key) ||
                    (changes[i].value && strlen(changes[i].value) > STORE_VALUE_MAX))
                        return -EINVAL;
        return s->ops->commit(s->impl, changes, n, reterr);
}

int store_hmac_key(Store *s, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr) {
        assert(s && s->ops);
        return s->ops->hmac_key(s->impl, ret, reterr);
}

const char *store_describe(const Store *s) {
        assert(s && s->ops);
        return s->ops->describe(s->impl);
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        if (s->ops && s->ops->free)
                s->ops->free(s->impl);
        free(s);
        return NULL;
}

bool store_key_is_valid(const char *key) {
        size_t n = 0;

        if (!key)
                return false;
        for (const char *p = key; *p; p++, n++)
                if (*p <= ' ' || *p > '~' || n >= STORE_KEY_MAX)
                        return false;
        return n > 0;
}
