/*
 * Thin C wrappers over the intel-ipsec-mb API macros (IMB_SUBMIT_JOB, IMB_AES_KEYEXP_128, ...),
 * which call function pointers inside IMB_MGR. Wrapping them keeps IMB_MGR opaque to Rust.
 */
#include "shim.h"

uint32_t esprit_imb_used_arch(const IMB_MGR *m) { return m->used_arch; }
uint64_t esprit_imb_features(const IMB_MGR *m) { return m->features; }

IMB_JOB *esprit_imb_get_next_job(IMB_MGR *m) { return IMB_GET_NEXT_JOB(m); }
IMB_JOB *esprit_imb_submit_job(IMB_MGR *m) { return IMB_SUBMIT_JOB(m); }
IMB_JOB *esprit_imb_get_completed_job(IMB_MGR *m) { return IMB_GET_COMPLETED_JOB(m); }
IMB_JOB *esprit_imb_flush_job(IMB_MGR *m) { return IMB_FLUSH_JOB(m); }
uint32_t esprit_imb_queue_size(IMB_MGR *m) { return IMB_QUEUE_SIZE(m); }

void esprit_imb_aes_keyexp_128(IMB_MGR *m, const void *key, void *enc, void *dec)
{
        IMB_AES_KEYEXP_128(m, key, enc, dec);
}

void esprit_imb_aes_keyexp_256(IMB_MGR *m, const void *key, void *enc, void *dec)
{
        IMB_AES_KEYEXP_256(m, key, enc, dec);
}

void esprit_imb_sha1_one_block(IMB_MGR *m, const void *block, void *state)
{
        IMB_SHA1_ONE_BLOCK(m, block, state);
}

void esprit_imb_sha256_one_block(IMB_MGR *m, const void *block, void *state)
{
        IMB_SHA256_ONE_BLOCK(m, block, state);
}

void esprit_imb_aes128_gcm_pre(IMB_MGR *m, const void *key, struct gcm_key_data *kd)
{
        IMB_AES128_GCM_PRE(m, key, kd);
}

void esprit_imb_aes256_gcm_pre(IMB_MGR *m, const void *key, struct gcm_key_data *kd)
{
        IMB_AES256_GCM_PRE(m, key, kd);
}

void esprit_imb_aes128_gcm_enc(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len)
{
        IMB_AES128_GCM_ENC(m, kd, ctx, dst, src, len, iv, aad, aad_len, tag, tag_len);
}

void esprit_imb_aes128_gcm_dec(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len)
{
        IMB_AES128_GCM_DEC(m, kd, ctx, dst, src, len, iv, aad, aad_len, tag, tag_len);
}

void esprit_imb_aes256_gcm_enc(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len)
{
        IMB_AES256_GCM_ENC(m, kd, ctx, dst, src, len, iv, aad, aad_len, tag, tag_len);
}

void esprit_imb_aes256_gcm_dec(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len)
{
        IMB_AES256_GCM_DEC(m, kd, ctx, dst, src, len, iv, aad, aad_len, tag, tag_len);
}
