/*
 * objstore/objstore_s3.c — `s3://bucket[/prefix]?endpoint=URL&region=R`: the
 * S3 REST API through libcurl, signed with libcurl's AWS SigV4
 * (CURLOPT_AWS_SIGV4), path-style URLs (endpoint/bucket/prefix/key).
 *
 * Options: endpoint (default $AWS_ENDPOINT_URL, else
 * https://s3.<region>.amazonaws.com), region (default $AWS_REGION,
 * $AWS_DEFAULT_REGION, else us-east-1), connect_timeout_ms (5000),
 * timeout_ms (per request, 60000; also bounded by the call's deadline),
 * list_page (keys per ListObjectsV2 request, 1..1000, default 1000; small
 * values exercise continuation tokens in tests).
 * Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally
 * AWS_SESSION_TOKEN, read at open. Payloads are sent as UNSIGNED-PAYLOAD.
 *
 * One call here is one HTTP request (the generic shell in objstore.c adds
 * retries with backoff and hedged GETs); list follows ListObjectsV2
 * continuation tokens and counts each extra page as an attempt.
 *
 * Status mapping: 2xx ok; 404 QUIRE_ENOTFOUND; 412 QUIRE_EEXIST (a
 * conditional create lost); 416 handled by get_range; 401/403
 * QUIRE_EUNAUTHORIZED/QUIRE_EFORBIDDEN; 409, 429 and 5xx
 * QUIRE_EUNAVAILABLE (retryable); transport timeouts QUIRE_ETIMEDOUT,
 * connection failures QUIRE_EUNAVAILABLE; other 4xx QUIRE_EIO.
 *
 * Transport: the shared libcurl layer (net/xfer.h), the same one the service
 * client uses: pooled keep-alive connections, each request run under the
 * call's deadline (objstore__deadline_ns, and timeout_ms per request) and
 * the attempt's cancel token (a losing hedge is woken and stopped at once).
 * A Retry-After on a 503 or 429 is passed to the retry loop
 * (objstore__retry_after), which waits at least that long within the
 * deadline.
 *
 * Streaming writers spool to an unlinked temporary file (QUIRE_TMPDIR,
 * TMPDIR or /tmp) and upload it from there, so a retry can resend and
 * memory holds no copy.
 */
#include "net/xfer.h"
#include "objstore/objstore_int.h"
#include "util/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_MAX 64

struct s3_store {
  char *endpoint; /* no trailing '/' */
  char *bucket;
  char *prefix; /* "" or ends with '/' */
  char *region;
  char *userpwd;      /* "key:secret" */
  char *sigv4;        /* "aws:amz:<region>:s3" */
  char *token_header; /* "x-amz-security-token: ..." or NULL */
  long connect_timeout_ms, timeout_ms;
  size_t list_page;      /* max-keys per ListObjectsV2 request (1..1000) */
  quire_xfer_pool *pool; /* keep-alive connections (thread-safe) */
};

/* ---- one request ---------------------------------------------------------- */

struct req {
  const char *method; /* GET, PUT, HEAD, DELETE */
  const char *key;    /* object key below the store prefix, or NULL (bucket) */
  const char *query;  /* canonical query string, or NULL */
  const char *range;  /* "bytes=a-b" or NULL */
  int if_none_match;
  /* upload: from memory or from a file descriptor */
  const uint8_t *up_data;
  int up_fd;
  uint64_t up_len, up_pos;
  /* download: into a growing buffer or into a fixed one */
  quire_buf *down;
  uint8_t *fixed;
  size_t fixed_cap, fixed_len;
  uint64_t range_off; /* first byte asked for with range */
  uint64_t skip;      /* bytes of the body still to drop (a 200 to a Range) */
  int skip_set;
  int overflow;
  int empty_object; /* a 206 for a zero-length object (see on_header) */
  /* results */
  long status;
  unsigned retry_after_ms;
  char etag[QUIRE_OBJSTORE_ETAG_MAX + 1];
  uint64_t content_length;
  int have_length;
  quire_buf errbody; /* first bytes of an error body, for messages */
};

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  struct req *r = arg;
  size_t want = size * n;
  uint64_t left = r->up_len - r->up_pos;
  if (want > left) want = (size_t)left;
  if (!want) return 0;
  if (r->up_data) {
    memcpy(buf, r->up_data + r->up_pos, want);
  } else {
    ssize_t got = pread(r->up_fd, buf, want, (off_t)r->up_pos);
    if (got <= 0) return CURL_READFUNC_ABORT;
    want = (size_t)got;
  }
  r->up_pos += want;
  return want;
}

/* Rewinds the upload (curl may resend after a redirect or auth retry). */
static int on_seek(void *arg, curl_off_t off, int origin) {
  struct req *r = arg;
  if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->up_len) return CURL_SEEKFUNC_FAIL;
  r->up_pos = (uint64_t)off;
  return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *data, size_t size, size_t n, void *arg) {
  struct req *r = arg;
  size_t len = size * n;
  size_t total = len;
  if (r->status >= 300 || r->status == 0) {
    size_t room = r->errbody.limit - r->errbody.len;
    (void)quire__buf_append(&r->errbody, data, QUIRE_MIN(room, len));
    return total;
  }
  if (r->range && r->status == 200 && !r->skip_set) {
    /* The server ignored Range and sends the whole object: drop what
     * precedes the range (and, below, what follows it). */
    r->skip = r->range_off;
    r->skip_set = 1;
  }
  if (r->skip) {
    size_t drop = (size_t)QUIRE_MIN(r->skip, (uint64_t)len);
    r->skip -= drop;
    data += drop;
    len -= drop;
  }
  if (r->fixed) {
    size_t room = r->fixed_cap - r->fixed_len;
    size_t take = QUIRE_MIN(room, len);
    if (take) memcpy(r->fixed + r->fixed_len, data, take);
    r->fixed_len += take;
    /* A server that ignored Range sends more than asked: drop the rest. */
    return total;
  }
  if (r->down && r->down->cap == 0 && r->have_length && r->content_length <= r->down->limit &&
      quire__buf_reserve(r->down, (size_t)r->content_length) != 0) {
    r->overflow = 1; /* no room for the announced body */
    return 0;
  }
  if (r->down && quire__buf_append(r->down, data, len) != 0) {
    r->overflow = 1;
    return 0; /* aborts the transfer */
  }
  return total;
}

static size_t on_header(char *line, size_t size, size_t n, void *arg) {
  struct req *r = arg;
  size_t len = size * n;
  long code;
  if (quire__xfer_status_line(line, len, &code)) {
    /* a new response (after 100-continue or a redirect): reset */
    r->have_length = 0;
    r->etag[0] = 0;
    r->retry_after_ms = 0;
    r->status = code;
    return len;
  }
  if (quire__xfer_retry_after(line, len, &r->retry_after_ms)) return len;
  const char *colon = memchr(line, ':', len);
  if (!colon) return len;
  size_t name_len = (size_t)(colon - line);
  const char *v = colon + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
  size_t vlen = (size_t)(end - v);
  if (name_len == 4 && strncasecmp(line, "etag", 4) == 0) {
    if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') v++, vlen -= 2;
    if (vlen > QUIRE_OBJSTORE_ETAG_MAX) vlen = QUIRE_OBJSTORE_ETAG_MAX;
    memcpy(r->etag, v, vlen);
    r->etag[vlen] = 0;
  } else if (name_len == 13 && strncasecmp(line, "content-range", 13) == 0) {
    /* "bytes a-b/total". s3rver answers a range on an empty object with
     * 206, Content-Length 1 and no body (real S3 says 416): stop here
     * rather than wait for a byte that never comes. */
    const char *slash = memchr(v, '/', vlen);
    if (r->status == 206 && slash && end - slash == 2 && slash[1] == '0') {
      r->empty_object = 1;
      return 0; /* aborts the transfer */
    }
  } else if (name_len == 14 && strncasecmp(line, "content-length", 14) == 0) {
    char num[32];
    if (vlen && vlen < sizeof num) {
      memcpy(num, v, vlen);
      num[vlen] = 0;
      r->content_length = strtoull(num, NULL, 10);
      r->have_length = 1;
    }
  }
  return len;
}

static int map_curl(CURLcode cc, const char *method, const char *key) {
  switch (cc) {
  case CURLE_OPERATION_TIMEDOUT:
    return quire__err(QUIRE_ETIMEDOUT, "s3: %s %s: %s", method, key, curl_easy_strerror(cc));
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return quire__err(QUIRE_EUNAVAILABLE, "s3: %s %s: %s", method, key, curl_easy_strerror(cc));
  default: return quire__err(QUIRE_EIO, "s3: %s %s: %s", method, key, curl_easy_strerror(cc));
  }
}

/* The S3 error code from an XML error body ("" if none). */
static void error_code(const quire_buf *body, char *out, size_t cap) {
  out[0] = 0;
  if (!body->len) return;
  const char *b = (const char *)body->data;
  const char *s = memmem(b, body->len, "<Code>", 6);
  if (!s) return;
  s += 6;
  const char *e = memmem(s, body->len - (size_t)(s - b), "</Code>", 7);
  if (!e) return;
  size_t n = QUIRE_MIN((size_t)(e - s), cap - 1);
  memcpy(out, s, n);
  out[n] = 0;
}

static int map_status(struct req *r) {
  long st = r->status;
  if (st >= 200 && st < 300) return 0;
  char code[64];
  error_code(&r->errbody, code, sizeof code);
  const char *key = r->key ? r->key : "(bucket)";
  if (st == 404) return quire__err(QUIRE_ENOTFOUND, "s3: %s %s: 404 %s", r->method, key, code);
  if (st == 412)
    return quire__err(QUIRE_EEXIST, "s3: %s %s: 412 precondition failed (exists)", r->method, key);
  if (st == 401) return quire__err(QUIRE_EUNAUTHORIZED, "s3: %s %s: 401 %s", r->method, key, code);
  if (st == 403) return quire__err(QUIRE_EFORBIDDEN, "s3: %s %s: 403 %s", r->method, key, code);
  if (st == 409 || st == 429 || st >= 500) {
    if (st == 429 || st == 503) objstore__retry_after(r->retry_after_ms);
    return quire__err(QUIRE_EUNAVAILABLE, "s3: %s %s: %ld %s", r->method, key, st, code);
  }
  return quire__err(QUIRE_EIO, "s3: %s %s: HTTP %ld %s", r->method, key, st, code);
}

/* Performs r; returns 0 with r->status set (any status), or a transport
 * error. */
static int perform(struct s3_store *s3, struct req *r) {
  char *url = NULL;
  struct curl_slist *hdrs = NULL;
  int rc = 0;
  quire__buf_init(&r->errbody, 4096);
  quire_xfer_conn *x = quire__xfer_borrow(s3->pool);
  if (!x) return QUIRE_ENOMEM;
  CURL *h = quire__xfer_easy(x);
  int reuse = 0;
  size_t url_len = strlen(s3->endpoint) + strlen(s3->bucket) + strlen(s3->prefix) +
                   (r->key ? strlen(r->key) : 0) + (r->query ? strlen(r->query) : 0) + 8;
  url = quire__malloc(url_len);
  if (!url) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  if (r->key)
    snprintf(url, url_len, "%s/%s/%s%s%s%s", s3->endpoint, s3->bucket, s3->prefix, r->key,
             r->query ? "?" : "", r->query ? r->query : "");
  else
    snprintf(url, url_len, "%s/%s%s%s", s3->endpoint, s3->bucket, r->query ? "?" : "",
             r->query ? r->query : "");

  struct curl_slist *t;
#define ADD_HEADER(text)                                                                                     \
  do {                                                                                                       \
    t = curl_slist_append(hdrs, (text));                                                                     \
    if (!t) {                                                                                                \
      rc = QUIRE_ENOMEM;                                                                                     \
      goto out;                                                                                              \
    }                                                                                                        \
    hdrs = t;                                                                                                \
  } while (0)
  ADD_HEADER("x-amz-content-sha256: UNSIGNED-PAYLOAD");
  /* No "Expect:" override: curl's SigV4 would list it as a signed header
   * although it is never sent. curl's own Expect: 100-continue (large
   * PUTs) is not signed, which S3 allows. */
  if (s3->token_header) ADD_HEADER(s3->token_header);
  char range_hdr[96];
  if (r->range) {
    snprintf(range_hdr, sizeof range_hdr, "Range: %s", r->range);
    ADD_HEADER(range_hdr);
  }
  if (r->if_none_match) ADD_HEADER("If-None-Match: *");
  int upload = strcmp(r->method, "PUT") == 0;
  if (upload) ADD_HEADER("Content-Type: application/octet-stream");
#undef ADD_HEADER

  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s3->sigv4);
  curl_easy_setopt(h, CURLOPT_USERPWD, s3->userpwd);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s3->connect_timeout_ms);
  /* This request's deadline: timeout_ms from now, or the call's deadline
   * (retries included) when that is sooner. */
  uint64_t deadline_ms = quire__now_ms() + (uint64_t)s3->timeout_ms;
  uint64_t call_deadline = objstore__deadline_ns();
  if (call_deadline && (call_deadline + 999999) / 1000000 < deadline_ms)
    deadline_ms = (call_deadline + 999999) / 1000000;
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  if (upload) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, r);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->up_len);
  } else if (strcmp(r->method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(r->method, "DELETE") == 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  CURLcode cc = CURLE_OK;
  rc = quire__xfer_run(x, deadline_ms, objstore__cancel_token(), &cc);
  const char *what = r->key ? r->key : "(bucket)";
  if (rc == QUIRE_ETIMEDOUT) {
    rc = quire__err(QUIRE_ETIMEDOUT, "s3: %s %s: no answer within %ld ms", r->method, what, s3->timeout_ms);
  } else if (rc == QUIRE_ECANCELED) {
    rc = quire__err(QUIRE_ECANCELED, "s3: %s %s: cancelled", r->method, what);
  } else if (rc) {
    /* curl's multi interface failed; message set */
  } else if (r->empty_object) {
    r->status = 206;
  } else if (cc == CURLE_WRITE_ERROR && r->overflow) {
    rc = QUIRE_ENOMEM;
  } else if (cc != CURLE_OK) {
    rc = map_curl(cc, r->method, what);
  } else {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    reuse = 1;
  }
out:
  curl_slist_free_all(hdrs);
  quire__free(url);
  quire__xfer_give_back(s3->pool, x, reuse);
  return rc;
}

static void req_done(struct req *r) { quire__buf_free(&r->errbody); }

/* ---- operations ----------------------------------------------------------- */

static int put_common(struct s3_store *s3, const char *key, const uint8_t *data, int fd, uint64_t len,
                      int flags) {
  struct req r = {.method = "PUT", .key = key, .up_data = data, .up_fd = fd, .up_len = len};
  r.if_none_match = (flags & QUIRE_OBJSTORE_IF_ABSENT) != 0;
  if (!data && fd < 0) r.up_data = (const uint8_t *)"";
  int rc = perform(s3, &r);
  if (!rc) rc = map_status(&r);
  req_done(&r);
  return rc;
}

static int s3_put(quire_objstore *s, const char *key, const void *data, size_t len, int flags) {
  return put_common(s->impl, key, data ? data : (const void *)"", -1, len, flags);
}

static int s3_get(quire_objstore *s, const char *key, uint8_t **data, size_t *len) {
  quire_buf body;
  quire__buf_init(&body, SIZE_MAX / 2);
  struct req r = {.method = "GET", .key = key, .down = &body};
  int rc = perform(s->impl, &r);
  if (!rc) rc = map_status(&r);
  req_done(&r);
  if (rc) {
    quire__buf_free(&body);
    return rc;
  }
  if (!body.data) {
    body.data = quire__malloc(1); /* an empty object is still a buffer */
    if (!body.data) return QUIRE_ENOMEM;
  }
  *len = body.len;
  *data = quire__buf_detach(&body, len);
  return 0;
}

/* The object's size from a 416 body (ActualObjectSize), or a HEAD. */
static int size_after_416(quire_objstore *s, const char *key, const struct req *r, uint64_t *size);

static int s3_head(quire_objstore *s, const char *key, quire_objstore_info *info) {
  struct req r = {.method = "HEAD", .key = key};
  int rc = perform(s->impl, &r);
  if (!rc) rc = map_status(&r);
  if (!rc && !r.have_length) rc = quire__err(QUIRE_EIO, "s3: HEAD %s: no Content-Length", key);
  if (!rc) {
    info->size = r.content_length;
    snprintf(info->etag, sizeof info->etag, "%s", r.etag);
  }
  req_done(&r);
  return rc;
}

static int size_after_416(quire_objstore *s, const char *key, const struct req *r, uint64_t *size) {
  const char *b = (const char *)r->errbody.data;
  const char *tag = b ? memmem(b, r->errbody.len, "<ActualObjectSize>", 18) : NULL;
  if (tag) {
    *size = strtoull(tag + 18, NULL, 10);
    return 0;
  }
  quire_objstore_info info;
  int rc = s3_head(s, key, &info);
  *size = info.size;
  return rc;
}

static int s3_get_range(quire_objstore *s, const char *key, uint64_t off, size_t len, void *buf,
                        size_t *got) {
  *got = 0;
  if (len == 0) {
    quire_objstore_info info;
    int rc = s3_head(s, key, &info);
    if (rc) return rc;
    if (off > info.size)
      return quire__err(QUIRE_ERANGE, "s3: offset %llu past the end of '%s'", (unsigned long long)off, key);
    return 0;
  }
  char range[96];
  snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)off,
           (unsigned long long)(off + len - 1));
  struct req r = {
      .method = "GET", .key = key, .range = range, .range_off = off, .fixed = buf, .fixed_cap = len};
  int rc = perform(s->impl, &r);
  if (rc) goto out;
  if (r.status == 416) {
    uint64_t size;
    rc = size_after_416(s, key, &r, &size);
    if (!rc && off > size)
      rc = quire__err(QUIRE_ERANGE, "s3: offset %llu past the end of '%s'", (unsigned long long)off, key);
    goto out; /* off == size: nothing to read */
  }
  if (r.empty_object) {
    if (off > 0)
      rc = quire__err(QUIRE_ERANGE, "s3: offset %llu past the end of '%s'", (unsigned long long)off, key);
    goto out; /* got stays 0 */
  }
  rc = map_status(&r);
  if (rc) goto out;
  if (!rc) *got = r.fixed_len;
out:
  req_done(&r);
  return rc;
}

static int s3_del(quire_objstore *s, const char *key, int *found) {
  struct req r = {.method = "DELETE", .key = key};
  int rc = perform(s->impl, &r);
  if (!rc && r.status == 404) *found = 0; /* S3 itself answers 204 either way: found stays -1 */
  if (!rc && r.status != 404) rc = map_status(&r);
  req_done(&r);
  return rc;
}

/* ---- list (ListObjectsV2) ------------------------------------------------- */

/* RFC 3986 percent-encoding of everything but unreserved characters: the
 * canonical form SigV4 signs, so the query is sent exactly as signed. */
static int append_encoded(quire_buf *b, const char *s) {
  int rc = 0;
  for (; !rc && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      rc = quire__buf_append(b, s, 1);
    } else {
      char esc[4];
      snprintf(esc, sizeof esc, "%%%02X", c);
      rc = quire__buf_append(b, esc, 3);
    }
  }
  return rc;
}

/* Text of the next <tag>...</tag> in [p, end), XML entities decoded into
 * out (cap bytes). Returns a pointer past the closing tag, or NULL. */
static const char *xml_text(const char *p, const char *end, const char *tag, char *out, size_t cap) {
  char open[64], close[64];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *s = memmem(p, (size_t)(end - p), open, strlen(open));
  if (!s) return NULL;
  s += strlen(open);
  const char *e = memmem(s, (size_t)(end - s), close, strlen(close));
  if (!e) return NULL;
  size_t n = 0;
  for (const char *q = s; q < e && n + 1 < cap;) {
    static const struct {
      const char *ent;
      char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    int matched = 0;
    if (*q == '&') {
      for (size_t i = 0; i < QUIRE_ARRAY_LEN(ents); i++) {
        size_t el = strlen(ents[i].ent);
        if ((size_t)(e - q) >= el && memcmp(q, ents[i].ent, el) == 0) {
          out[n++] = ents[i].c;
          q += el;
          matched = 1;
          break;
        }
      }
    }
    if (!matched) out[n++] = *q++;
  }
  out[n] = 0;
  return e + strlen(close);
}

int objstore__s3_parse_list(const char *body, size_t len, const char *store_prefix, const char *start_after,
                            size_t limit, quire_objstore_list *out, int *truncated, char **token) {
  *truncated = 0;
  *token = NULL;
  if (!len) return quire__err(QUIRE_EIO, "s3: list: empty response");
  const char *end = body + len;
  size_t plen = strlen(store_prefix);
  int rc = 0;
  char *item = quire__malloc(QUIRE_OBJSTORE_KEY_MAX * 6 + 64);
  if (!item) return QUIRE_ENOMEM;
  if (xml_text(body, end, "IsTruncated", item, 16)) *truncated = strcmp(item, "true") == 0;
  if (*truncated && xml_text(body, end, "NextContinuationToken", item, QUIRE_OBJSTORE_KEY_MAX * 6)) {
    *token = quire__strdup(item);
    if (!*token) rc = QUIRE_ENOMEM;
  }
  const char *c = body;
  while (!rc && (c = memmem(c, (size_t)(end - c), "<Contents>", 10)) != NULL) {
    const char *ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
    if (!ce) {
      rc = quire__err(QUIRE_EIO, "s3: list: malformed XML");
      break;
    }
    char size_text[32];
    if (xml_text(c, ce, "Key", item, QUIRE_OBJSTORE_KEY_MAX * 6) &&
        xml_text(c, ce, "Size", size_text, sizeof size_text) && strncmp(item, store_prefix, plen) == 0 &&
        quire_objstore_key_check(item + plen) == 0) {
      /* The contract is ascending keys after start_after; an endpoint that
       * breaks it would make paging skip keys, so say so. */
      const char *prev = out->count ? out->entries[out->count - 1].key : start_after;
      if (strcmp(item + plen, prev) <= 0) {
        rc = quire__err(QUIRE_EIO, "s3: list: endpoint returned '%s' after '%s' (not in byte order)",
                        item + plen, prev);
        break;
      }
      if (out->count == limit) {
        out->truncated = 1;
        break;
      }
      rc = objstore__list_push(out, item + plen, strtoull(size_text, NULL, 10));
    }
    c = ce + 11;
  }
  quire__free(item);
  if (rc) {
    quire__free(*token);
    *token = NULL;
  }
  return rc;
}

static int s3_list(quire_objstore *s, const char *prefix, const char *start_after, size_t limit,
                   quire_objstore_list *out) {
  struct s3_store *s3 = s->impl;
  char *token = NULL;
  int rc = 0;
  for (int page = 0;; page++) {
    if (page) atomic_fetch_add(&s->attempts[QUIRE_OBJSTORE_OP_LIST], 1);
    quire_buf q;
    quire__buf_init(&q, 1 << 16);
    size_t want = limit - out->count;
    char num[32];
    snprintf(num, sizeof num, "%zu", QUIRE_MIN(want, s3->list_page));
    /* parameters in sorted order: the canonical query string */
    if (token) {
      rc = quire__buf_append(&q, "continuation-token=", 19);
      if (!rc) rc = append_encoded(&q, token);
      if (!rc) rc = quire__buf_append(&q, "&", 1);
    }
    if (!rc) rc = quire__buf_append(&q, "list-type=2&max-keys=", 21);
    if (!rc) rc = quire__buf_append(&q, num, strlen(num));
    if (!rc) rc = quire__buf_append(&q, "&prefix=", 8);
    if (!rc) rc = append_encoded(&q, s3->prefix);
    if (!rc) rc = append_encoded(&q, prefix);
    if (!rc && *start_after && !token) {
      rc = quire__buf_append(&q, "&start-after=", 13);
      if (!rc) rc = append_encoded(&q, s3->prefix);
      if (!rc) rc = append_encoded(&q, start_after);
    }
    if (!rc) rc = quire__buf_append(&q, "", 1);
    quire_buf body;
    quire__buf_init(&body, 64u << 20);
    struct req r = {.method = "GET", .query = (const char *)q.data, .down = &body};
    if (!rc) rc = perform(s3, &r);
    if (!rc) rc = map_status(&r);
    req_done(&r);
    quire__buf_free(&q);
    quire__free(token);
    token = NULL;
    if (rc) {
      quire__buf_free(&body);
      break;
    }
    int truncated = 0;
    if (!rc)
      rc = objstore__s3_parse_list((const char *)body.data, body.len, s3->prefix, start_after, limit, out,
                                   &truncated, &token);
    quire__buf_free(&body);
    if (rc || out->truncated) break;
    if (!truncated || !token) break;
    if (out->count == limit) {
      out->truncated = 1;
      break;
    }
  }
  quire__free(token);
  return rc;
}

/* ---- streaming writer: spool to a temporary file, then PUT ---------------- */

struct objstore_wimpl {
  quire_objstore *s;
  char key[QUIRE_OBJSTORE_KEY_MAX + 1];
  int flags;
  int fd;
  uint64_t len;
};

static int spool_open(void) {
  const char *dir = getenv("QUIRE_TMPDIR");
  if (!dir || !*dir) dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  char path[4096];
  snprintf(path, sizeof path, "%s/quire-s3-spool-XXXXXX", dir);
  fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) return quire__errno("s3: temporary spool file in %s", dir);
  unlink(path);
  return fd;
}

static int sw_write(struct objstore_wimpl *w, const void *data, size_t len) {
  int rc = objstore__write_all(w->fd, data, len);
  if (!rc) w->len += len;
  return rc;
}

static void sw_abort(struct objstore_wimpl *w) {
  if (w->fd >= 0) close(w->fd);
  quire__free(w);
}

static int sw_attempt(void *ctx) {
  struct objstore_wimpl *w = ctx;
  return put_common(w->s->impl, w->key, NULL, w->fd, w->len, w->flags);
}

static int sw_commit(struct objstore_wimpl *w) {
  int rc = objstore__with_retries(w->s, QUIRE_OBJSTORE_OP_WRITER, sw_attempt, w);
  sw_abort(w);
  return rc;
}

static const struct objstore_writer_ops s3_writer_ops = {sw_write, sw_commit, sw_abort};

static int s3_writer_open(quire_objstore *s, const char *key, int flags, struct objstore_wimpl **out,
                          const struct objstore_writer_ops **ops) {
  struct objstore_wimpl *w = quire__calloc(1, sizeof *w);
  if (!w) return QUIRE_ENOMEM;
  w->s = s;
  w->flags = flags;
  snprintf(w->key, sizeof w->key, "%s", key);
  w->fd = spool_open();
  if (w->fd < 0) {
    int rc = w->fd;
    quire__free(w);
    return rc;
  }
  *out = w;
  *ops = &s3_writer_ops;
  return 0;
}

/* ---- open / close --------------------------------------------------------- */

static void s3_close(quire_objstore *s) {
  struct s3_store *s3 = s->impl;
  if (!s3) return;
  quire__xfer_pool_destroy(s3->pool);
  quire__free(s3->endpoint);
  quire__free(s3->bucket);
  quire__free(s3->prefix);
  quire__free(s3->region);
  quire__free(s3->userpwd);
  quire__free(s3->sigv4);
  quire__free(s3->token_header);
  quire__free(s3);
  s->impl = NULL;
}

static const struct objstore_ops s3_ops = {
    .scheme = "s3",
    .put = s3_put,
    .get = s3_get,
    .get_range = s3_get_range,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .writer_open = s3_writer_open,
    .close = s3_close,
};

static char *join(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *s = quire__malloc(n);
  if (s) snprintf(s, n, "%s%s%s", a, b, c);
  return s;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

int objstore__s3_open(quire_objstore *s, const char *location, struct objstore_params *p) {
  const char *endpoint = objstore__param(p, "endpoint");
  const char *region = objstore__param(p, "region");
  uint64_t connect_ms, timeout_ms, list_page;
  int rc = objstore__param_u64(p, "connect_timeout_ms", 5000, &connect_ms);
  if (!rc) rc = objstore__param_u64(p, "timeout_ms", 60000, &timeout_ms);
  if (!rc) rc = objstore__param_u64(p, "list_page", 1000, &list_page);
  if (rc) return rc;
  if (list_page == 0 || list_page > 1000) return quire__err(QUIRE_EINVAL, "s3: list_page must be 1..1000");
  if (connect_ms == 0 || connect_ms > 600000 || timeout_ms == 0 || timeout_ms > 3600000)
    return quire__err(QUIRE_EINVAL, "s3: timeouts out of range");
  if (!region) region = env("AWS_REGION");
  if (!region) region = env("AWS_DEFAULT_REGION");
  if (!region) region = "us-east-1";
  if (!endpoint) endpoint = env("AWS_ENDPOINT_URL");
  const char *key_id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
  if (!key_id || !secret)
    return quire__err(QUIRE_EINVAL, "s3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  for (const char *c = region; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
      return quire__err(QUIRE_EINVAL, "s3: bad region '%s'", region);

  /* bucket[/prefix] */
  const char *slash = strchr(location, '/');
  size_t blen = slash ? (size_t)(slash - location) : strlen(location);
  if (blen < 3 || blen > 63) return quire__err(QUIRE_EINVAL, "s3: bad bucket name in '%s'", location);
  for (size_t i = 0; i < blen; i++) {
    char c = location[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return quire__err(QUIRE_EINVAL, "s3: bad bucket name in '%s'", location);
  }
  const char *prefix = slash ? slash + 1 : "";
  size_t prefix_len = strlen(prefix);
  while (prefix_len && prefix[prefix_len - 1] == '/') prefix_len--;
  char prefix_buf[QUIRE_OBJSTORE_KEY_MAX + 1];
  if (prefix_len > QUIRE_OBJSTORE_KEY_MAX - 1) return quire__err(QUIRE_EINVAL, "s3: prefix too long");
  memcpy(prefix_buf, prefix, prefix_len);
  prefix_buf[prefix_len] = 0;
  if (prefix_len && quire_objstore_key_check(prefix_buf) != 0)
    return quire__err(QUIRE_EINVAL, "s3: bad prefix '%s'", prefix_buf);

  struct s3_store *s3 = quire__calloc(1, sizeof *s3);
  if (!s3) return QUIRE_ENOMEM;
  s->impl = s3;
  s->ops = &s3_ops;
  rc = quire__xfer_pool_create(POOL_MAX, &s3->pool);
  if (rc) return rc;
  s3->connect_timeout_ms = (long)connect_ms;
  s3->timeout_ms = (long)timeout_ms;
  s3->list_page = (size_t)list_page;
  char default_ep[128];
  if (!endpoint) {
    snprintf(default_ep, sizeof default_ep, "https://s3.%s.amazonaws.com", region);
    endpoint = default_ep;
  }
  if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
    return quire__err(QUIRE_EINVAL, "s3: endpoint must be http:// or https://");
  s3->endpoint = quire__strdup(endpoint);
  s3->bucket = quire__malloc(blen + 1);
  s3->prefix = join(prefix_buf, prefix_len ? "/" : "", "");
  s3->region = quire__strdup(region);
  s3->userpwd = join(key_id, ":", secret);
  s3->sigv4 = join("aws:amz:", region, ":s3");
  const char *session = env("AWS_SESSION_TOKEN");
  if (session) s3->token_header = join("x-amz-security-token: ", session, "");
  if (!s3->endpoint || !s3->bucket || !s3->prefix || !s3->region || !s3->userpwd || !s3->sigv4 ||
      (session && !s3->token_header))
    return QUIRE_ENOMEM;
  memcpy(s3->bucket, location, blen);
  s3->bucket[blen] = 0;
  size_t el = strlen(s3->endpoint);
  while (el && s3->endpoint[el - 1] == '/') s3->endpoint[--el] = 0;
  return 0;
}
