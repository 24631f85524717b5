/*
 * Declarations of the C wrappers in shim.c, and the header bindgen reads.
 */
#ifndef ESPRIT_IMB_SHIM_H
#define ESPRIT_IMB_SHIM_H

#include <intel-ipsec-mb.h>

uint32_t esprit_imb_used_arch(const IMB_MGR *m);
uint64_t esprit_imb_features(const IMB_MGR *m);

IMB_JOB *esprit_imb_get_next_job(IMB_MGR *m);
IMB_JOB *esprit_imb_submit_job(IMB_MGR *m);
IMB_JOB *esprit_imb_get_completed_job(IMB_MGR *m);
IMB_JOB *esprit_imb_flush_job(IMB_MGR *m);
uint32_t esprit_imb_queue_size(IMB_MGR *m);

void esprit_imb_aes_keyexp_128(IMB_MGR *m, const void *key, void *enc, void *dec);
void esprit_imb_aes_keyexp_256(IMB_MGR *m, const void *key, void *enc, void *dec);
void esprit_imb_sha1_one_block(IMB_MGR *m, const void *block, void *state);
void esprit_imb_sha256_one_block(IMB_MGR *m, const void *block, void *state);

void esprit_imb_aes128_gcm_pre(IMB_MGR *m, const void *key, struct gcm_key_data *kd);
void esprit_imb_aes256_gcm_pre(IMB_MGR *m, const void *key, struct gcm_key_data *kd);

void esprit_imb_aes128_gcm_enc(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len);
void esprit_imb_aes128_gcm_dec(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len);
void esprit_imb_aes256_gcm_enc(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len);
void esprit_imb_aes256_gcm_dec(IMB_MGR *m, const struct gcm_key_data *kd,
                               struct gcm_context_data *ctx, uint8_t *dst,
                               const uint8_t *src, uint64_t len, const uint8_t *iv,
                               const uint8_t *aad, uint64_t aad_len, uint8_t *tag,
                               uint64_t tag_len);

#endif /* ESPRIT_IMB_SHIM_H */
