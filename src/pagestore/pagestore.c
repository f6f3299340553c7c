/*
 * pagestore/pagestore.c — the pagestore service object: wiring of the object
 * store, upload pool, disk cache, catalog, metastore client, limiters and
 * thread pools; stats and readiness.
 */
#include "pagestore/ps_int.h"

#include <string.h>

static void defaults(struct quire_pagestore_opts *o) {
  if (!o->cache_bytes) o->cache_bytes = 1ull << 30;
  if (!o->cache_mappings) o->cache_mappings = 256;
  if (!o->flush_interval_ms) o->flush_interval_ms = 100;
  if (!o->flush_idle_ms) o->flush_idle_ms = 2;
  if (!o->partial_read_percent) o->partial_read_percent = 25;
  if (o->partial_read_percent > 100) o->partial_read_percent = 100;
  if (!o->upload_concurrency) o->upload_concurrency = 4;
  if (!o->download_concurrency) o->download_concurrency = 8;
  if (!o->read_threads) o->read_threads = 8;
  if (!o->max_read_pages) o->max_read_pages = 4096;
  if (!o->max_write_pages) o->max_write_pages = 4096;
}

/* Segments in the cache are validated on open (footer, index, checksums). */
static int validate_cached(const uint8_t *bytes, size_t len, const quire_gid *sid, void *ctx) {
  quire_pagestore *ps = ctx;
  quire_segment_view v;
  if (quire_segment_open(bytes, len, &ps->seglimits, &v) != 0) return -1;
  if (quire_gid_cmp(&v.sid, sid) != 0) return -1;
  return quire_segment_verify_pages(&v) == 0 ? 0 : -1;
}

int quire__pagestore_open(const struct quire_pagestore_opts *opts, quire_pagestore **out) {
  *out = NULL;
  if (!opts->metastore_url || !opts->cache_dir || (!opts->store && !opts->store_url))
    return quire__err(QUIRE_EINVAL, "pagestore needs a store, a metastore URL and a cache directory");
  quire_pagestore *ps = quire__calloc(1, sizeof *ps);
  if (!ps) return QUIRE_ENOMEM;
  ps->o = *opts;
  if (opts->receipt_key) {
    memcpy(ps->receipt_key, opts->receipt_key, sizeof ps->receipt_key);
    ps->o.receipt_key = ps->receipt_key;
  }
  defaults(&ps->o);
  quire_segment_limits_default(&ps->seglimits);
  if (opts->segment_bytes) {
    ps->seglimits.target_bytes = opts->segment_bytes;
    uint64_t pages = (opts->segment_bytes - QUIRE_SEGMENT_FOOTER_SIZE) / QUIRE_SEGMENT_PAGE_COST;
    if (pages < ps->seglimits.max_pages) ps->seglimits.max_pages = (uint32_t)pages;
  }
  int rc = quire_segment_limits_check(&ps->seglimits);
  if (rc) goto fail;
  if (opts->store) {
    ps->store = opts->store;
  } else {
    if ((rc = quire_objstore_open(opts->store_url, &ps->store)) != 0) goto fail;
    ps->own_store = 1;
  }
  if ((rc = quire_objstore_uploads_create(ps->store, ps->o.upload_concurrency, 64, &ps->uploads)) != 0)
    goto fail;
  ps_cache_options co = {.dir = opts->cache_dir,
                         .budget_bytes = ps->o.cache_bytes,
                         .max_mappings = ps->o.cache_mappings,
                         .wait_ms = 2000,
                         .validate = validate_cached,
                         .validate_ctx = ps};
  if ((rc = ps__cache_open(&co, &ps->cache)) != 0) goto fail;
  if ((rc = quire__catalog_open(opts->catalog_path, &ps->catalog)) != 0) goto fail;
  struct quire_http_client_opts mo = {.token = opts->metastore_token, .ca_file = opts->metastore_ca_file};
  if ((rc = quire__msclient_open(opts->metastore_url, &mo, &ps->ms)) != 0) goto fail;
  if ((rc = quire__limiter_create(64, &ps->catchup)) != 0) goto fail;
  if ((rc = quire__limiter_create(ps->o.download_concurrency, &ps->downloads)) != 0) goto fail;
  if ((rc = quire__pool_create(ps->o.download_concurrency, 1024, "ps-loader", &ps->loaders)) != 0) goto fail;
  if ((rc = quire__pool_create(ps->o.read_threads, 1024, "ps-reader", &ps->readers)) != 0) goto fail;
  if ((rc = quire__ps_writer_start(ps)) != 0) goto fail;
  *out = ps;
  return 0;
fail:
  quire__pagestore_close(ps);
  return rc;
}

void quire__pagestore_close(quire_pagestore *ps) {
  if (!ps) return;
  quire__ps_http_detach(ps);
  quire__ps_writer_stop(ps);
  quire__pool_destroy(ps->readers);
  quire__pool_destroy(ps->loaders);
  quire_objstore_uploads_destroy(ps->uploads);
  quire__limiter_destroy(ps->downloads);
  quire__limiter_destroy(ps->catchup);
  quire__msclient_close(ps->ms);
  ms_catalog_close(ps->catalog);
  ps__cache_close(ps->cache);
  if (ps->own_store) quire_objstore_close(ps->store);
  quire__free(ps);
}

int quire__pagestore_ready(quire_pagestore *ps) {
  quire_objstore_info info;
  int rc = quire_objstore_head(ps->store, "segments/ready-probe", &info);
  return rc == 0 || rc == QUIRE_ENOTFOUND || rc == QUIRE_EINVAL ? 0 : rc;
}

void quire__ps_stats(quire_pagestore *ps, struct ps_stats *out) {
  out->segments_flushed = atomic_load(&ps->segments_flushed);
  out->segments_uploaded = atomic_load(&ps->segments_uploaded);
  out->upload_failures = atomic_load(&ps->upload_failures);
  out->pages_written = atomic_load(&ps->pages_written);
  out->pages_served = atomic_load(&ps->pages_served);
  out->downloads_whole = atomic_load(&ps->downloads_whole);
  out->downloads_partial = atomic_load(&ps->downloads_partial);
  out->catalog_catchups = atomic_load(&ps->catalog_catchups);
}
