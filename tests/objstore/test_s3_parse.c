/* The ListObjectsV2 page parser: prefix stripping, entity decoding, foreign
 * and invalid keys skipped, truncation and tokens, order enforcement. */
#include "objstore/objstore_int.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static int parse(const char *xml, const char *prefix, const char *after, size_t limit,
                 quire_objstore_list *out, int *truncated, char **token) {
  memset(out, 0, sizeof *out);
  return objstore__s3_parse_list(xml, strlen(xml), prefix, after, limit, out, truncated, token);
}

int main(void) {
  test_seed();
  quire_objstore_list l;
  int truncated;
  char *token;
  const char *page = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                     "<Contents><Key>pre/a</Key><Size>5</Size></Contents>"
                     "<Contents><Key>other/zz</Key><Size>1</Size></Contents>"
                     "<Contents><Key>pre/b&amp;c</Key><Size>1</Size></Contents>"
                     "<Contents><Key>pre/b/.tmp</Key><Size>1</Size></Contents>"
                     "<Contents><Key>pre/c/d</Key><Size>18446744073709551615</Size></Contents>"
                     "<NextContinuationToken>1dDE+/ab&amp;c=</NextContinuationToken></ListBucketResult>";
  CHECK_OK(parse(page, "pre/", "", 10, &l, &truncated, &token));
  CHECK(l.count == 2 && !l.truncated && truncated);
  CHECK(strcmp(l.entries[0].key, "a") == 0 && l.entries[0].size == 5);
  CHECK(strcmp(l.entries[1].key, "c/d") == 0 && l.entries[1].size == UINT64_MAX);
  CHECK(token && strcmp(token, "1dDE+/ab&c=") == 0);
  free(token);
  quire_objstore_list_free(&l);
  /* the limit cuts and marks the result truncated */
  CHECK_OK(parse(page, "pre/", "", 1, &l, &truncated, &token));
  CHECK(l.count == 1 && l.truncated);
  free(token);
  quire_objstore_list_free(&l);
  /* keys not after start_after, or out of order: a loud error, not a skip */
  CHECK_RC(parse(page, "pre/", "b", 10, &l, &truncated, &token), QUIRE_EIO);
  CHECK(token == NULL);
  quire_objstore_list_free(&l);
  const char *unordered = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                          "<Contents><Key>b</Key><Size>1</Size></Contents>"
                          "<Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>";
  CHECK_RC(parse(unordered, "", "", 10, &l, &truncated, &token), QUIRE_EIO);
  CHECK(strstr(quire_errmsg(), "not in byte order") != NULL);
  quire_objstore_list_free(&l);
  /* malformed */
  CHECK_RC(parse("<ListBucketResult><Contents><Key>a</Key>", "", "", 10, &l, &truncated, &token), QUIRE_EIO);
  quire_objstore_list_free(&l);
  CHECK_RC(parse("", "", "", 10, &l, &truncated, &token), QUIRE_EIO);
  CHECK_OK(parse("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>", "", "", 10, &l,
                 &truncated, &token));
  CHECK(l.count == 0 && !truncated && token == NULL);
  return test_done("objstore s3 list parser");
}
