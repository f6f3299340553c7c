/*
 * quire/splinter.h — compressed sets of u32 values (page indexes), in two
 * forms that every set operation accepts in any pairing.
 *
 *  - splinter_t (owned): a mutable set in memory. Created by splinter_new()
 *    or splinter_from_sorted(), released by splinter_free(). Not thread-safe
 *    for writers; any number of threads may read a set nobody is mutating.
 *  - splinter_view_t (view): a validated, read-only window over serialized
 *    bytes (an mmap'd segment, a commit record, a network message). Opening a
 *    view checks the whole encoding (checksum, every offset, length, order and
 *    node kind) and allocates nothing; queries then run in place on the
 *    bytes. The view is a small value struct the caller keeps anywhere (stack
 *    included) and simply drops: there is nothing to close. The bytes must
 *    stay valid and unchanged for as long as the view (or any iterator over
 *    it) is used.
 *  - splinter_ref_t: a tagged "either form" operand for the read-only and
 *    algebra functions: splinter_ref_owned(s) or splinter_ref_view(&v). It
 *    borrows; it owns nothing and costs nothing to make.
 *
 * The byte format (docs/SPLINTER.md) is a 4-level byte trie whose every node
 * picks the cheapest of empty / full / sorted array / bitmap / runs / tree,
 * followed by a footer with magic, format version, cardinality and an XXH3-64
 * checksum. Serialization is deterministic: equal sets give equal bytes.
 *
 * Errors: QUIRE_ENOMEM (allocation), QUIRE_EINVAL (bad argument),
 * QUIRE_ECORRUPT (bytes failed validation), QUIRE_EVERSION (a format version
 * this build does not read), QUIRE_ENOTFOUND (min/max/select on a set without
 * that element). A function that fails leaves its output sets unchanged.
 */
#ifndef QUIRE_SPLINTER_H
#define QUIRE_SPLINTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Format constants (docs/SPLINTER.md). */
#define SPLINTER_FORMAT_VERSION 1
/* The footer is 12..15 bytes (its cardinality field is 1..4 bytes). */
#define SPLINTER_FOOTER_MAX 15
/* The smallest valid encoding (the empty set): root kind byte + 12-byte footer. */
#define SPLINTER_MIN_SIZE 13

typedef struct splinter splinter_t; /* opaque, owned */

/* A validated view. Fields are read-only for callers; use the functions. */
typedef struct splinter_view {
  const uint8_t *bytes; /* the whole encoding, borrowed from the caller */
  size_t len;           /* its length, footer included */
  size_t root_len;      /* bytes of the root node (it starts at bytes[0]) */
  uint64_t cardinality; /* number of elements (up to 2^32) */
  /* Set by splinter_view_open: the first node below the root's chain of
   * one-child trees (the root itself if it has none), where lookups start.
   * It begins at bytes[0] like the root (a tree's first child does), is
   * entry_len bytes long, and every element's top bytes are entry_prefix. */
  size_t entry_len;
  uint32_t entry_prefix;
  uint8_t entry_level;
} splinter_view_t;

/* Either form, borrowed. Exactly one of owned/view is non-NULL. */
typedef struct splinter_ref {
  const splinter_t *owned;
  const splinter_view_t *view;
} splinter_ref_t;

static inline splinter_ref_t splinter_ref_owned(const splinter_t *s) {
  splinter_ref_t r = {s, NULL};
  return r;
}
static inline splinter_ref_t splinter_ref_view(const splinter_view_t *v) {
  splinter_ref_t r = {NULL, v};
  return r;
}

/* ---- owned sets: lifecycle ------------------------------------------------ */

/* A new empty set in *out; the caller frees it with splinter_free. */
QUIRE_API int splinter_new(splinter_t **out);
/* Releases s and everything it owns; NULL is fine. */
QUIRE_API void splinter_free(splinter_t *s);
/* A new set holding vals[0..n); the values must be strictly ascending
 * (QUIRE_EINVAL otherwise). The fast way to build a set. */
QUIRE_API int splinter_from_sorted(const uint32_t *vals, size_t n, splinter_t **out);
/* A new owned copy of src (owned or view). */
QUIRE_API int splinter_from_ref(splinter_ref_t src, splinter_t **out);
/* dst = src. src may be dst itself (then nothing happens). */
QUIRE_API int splinter_assign(splinter_t *dst, splinter_ref_t src);
/* Removes every element (keeps the allocation for reuse). */
QUIRE_API void splinter_clear(splinter_t *s);

/* ---- owned sets: mutation --------------------------------------------------
 * Each returns 1 if the set changed, 0 if it already held (insert) or lacked
 * (remove) the value, or a negative error (QUIRE_ENOMEM: removing one value
 * from a long full range may need to allocate). Ascending inserts append in
 * O(1) amortized; others cost O(log n) plus a move of the tail. */
QUIRE_API int splinter_insert(splinter_t *s, uint32_t value);
QUIRE_API int splinter_remove(splinter_t *s, uint32_t value);
/* Inserts / removes every value in [lo, hi] (inclusive). 0 or an error;
 * QUIRE_EINVAL if lo > hi. O(n + size of the range in 256-value blocks that
 * are not already full/empty). */
QUIRE_API int splinter_insert_range(splinter_t *s, uint32_t lo, uint32_t hi);
QUIRE_API int splinter_remove_range(splinter_t *s, uint32_t lo, uint32_t hi);
/* Inserts n values in any order (duplicates allowed). 0 or an error; on error
 * a prefix of vals may have been inserted. */
QUIRE_API int splinter_insert_many(splinter_t *s, const uint32_t *vals, size_t n);

/* ---- queries on owned sets ------------------------------------------------- */

QUIRE_API bool splinter_contains(const splinter_t *s, uint32_t value);
QUIRE_API uint64_t splinter_cardinality(const splinter_t *s);
QUIRE_API bool splinter_is_empty(const splinter_t *s);
/* Smallest / largest element; QUIRE_ENOTFOUND if the set is empty. */
QUIRE_API int splinter_min(const splinter_t *s, uint32_t *out);
QUIRE_API int splinter_max(const splinter_t *s, uint32_t *out);
/* Number of elements <= value. */
QUIRE_API uint64_t splinter_rank(const splinter_t *s, uint32_t value);
/* The element with 0-based position idx in ascending order; QUIRE_ENOTFOUND
 * if idx >= cardinality. */
QUIRE_API int splinter_select(const splinter_t *s, uint64_t idx, uint32_t *out);

/* ---- views over serialized bytes ------------------------------------------ */

/* Validates bytes[0..len) completely and fills *view. Allocates nothing; the
 * bytes are borrowed and must outlive the view. Returns 0, QUIRE_ECORRUPT
 * (truncated, bad magic, checksum, offsets, order, kinds) or QUIRE_EVERSION
 * (valid magic, unknown format version). Never reads outside [bytes,
 * bytes+len). Cost: one pass over the bytes. */
QUIRE_API int splinter_view_open(const void *bytes, size_t len, splinter_view_t *view);
QUIRE_API bool splinter_view_contains(const splinter_view_t *v, uint32_t value);
QUIRE_API uint64_t splinter_view_cardinality(const splinter_view_t *v);
QUIRE_API bool splinter_view_is_empty(const splinter_view_t *v);
QUIRE_API int splinter_view_min(const splinter_view_t *v, uint32_t *out);
QUIRE_API int splinter_view_max(const splinter_view_t *v, uint32_t *out);
QUIRE_API uint64_t splinter_view_rank(const splinter_view_t *v, uint32_t value);
QUIRE_API int splinter_view_select(const splinter_view_t *v, uint64_t idx, uint32_t *out);

/* ---- iteration (either form) ------------------------------------------------
 * A forward iterator over the elements >= lower_bound, in ascending order.
 * The iterator is a value the caller keeps (stack is fine); it allocates
 * nothing and needs no cleanup. The set must not be mutated (owned) or its
 * bytes changed (view) while the iterator is in use. */
typedef struct splinter_iter {
  uint64_t opaque_[72];
} splinter_iter_t;

QUIRE_API void splinter_iter_init(splinter_iter_t *it, splinter_ref_t set, uint32_t lower_bound);
/* 1 and *out = the next element, or 0 at the end. */
QUIRE_API int splinter_iter_next(splinter_iter_t *it, uint32_t *out);
/* Up to cap next elements into out[]; returns how many (0 at the end). */
QUIRE_API size_t splinter_iter_next_batch(splinter_iter_t *it, uint32_t *out, size_t cap);

/* ---- set algebra (any pairing of forms) -----------------------------------
 * out's previous contents are replaced by the result. out may be the owned
 * set behind a or b (in-place: splinter_union(splinter_ref_owned(acc), x,
 * acc) is acc |= x). On error out is unchanged. out keeps the memory of its
 * previous contents for the next result built into it, so repeated algebra
 * into the same set allocates nothing once it has grown. A view operand is
 * read in place (no allocation proportional to it). */
QUIRE_API int splinter_union(splinter_ref_t a, splinter_ref_t b, splinter_t *out);
QUIRE_API int splinter_intersection(splinter_ref_t a, splinter_ref_t b, splinter_t *out);
QUIRE_API int splinter_difference(splinter_ref_t a, splinter_ref_t b, splinter_t *out); /* a - b */
QUIRE_API int splinter_symmetric_difference(splinter_ref_t a, splinter_ref_t b, splinter_t *out);
/* a = a - b, and removed (if not NULL) = a ∩ b, the part taken out of a. b may
 * be a view of a segment's pages: cut(wanted, segment_pages, &found). removed
 * must not be a itself. On error neither a nor removed changes. */
QUIRE_API int splinter_cut(splinter_t *a, splinter_ref_t b, splinter_t *removed);
/* Pure predicates; they never allocate and never fail. */
QUIRE_API bool splinter_is_subset(splinter_ref_t a, splinter_ref_t b); /* a ⊆ b */
QUIRE_API bool splinter_intersects(splinter_ref_t a, splinter_ref_t b);
QUIRE_API bool splinter_equal(splinter_ref_t a, splinter_ref_t b);

/* Generic read-only queries on either form (dispatch to the functions above). */
QUIRE_API bool splinter_ref_contains(splinter_ref_t s, uint32_t value);
QUIRE_API uint64_t splinter_ref_cardinality(splinter_ref_t s);
QUIRE_API int splinter_ref_min(splinter_ref_t s, uint32_t *out);
QUIRE_API int splinter_ref_max(splinter_ref_t s, uint32_t *out);

/* ---- serialization ---------------------------------------------------------
 * The encoding of s: deterministic, validated by splinter_view_open. */
/* Exact number of bytes splinter_serialize will write. */
QUIRE_API int splinter_serialized_size(const splinter_t *s, size_t *size);
/* Writes the encoding into buf[0..cap); *written = its length. QUIRE_EINVAL
 * (and nothing useful in buf) if cap is too small. */
QUIRE_API int splinter_serialize(const splinter_t *s, void *buf, size_t cap, size_t *written);
/* Same into a new buffer; the caller frees *out with splinter_bytes_free. */
QUIRE_API int splinter_serialize_alloc(const splinter_t *s, uint8_t **out, size_t *len);
QUIRE_API void splinter_bytes_free(void *p);

/* Writes a human-readable description of the encoding in bytes (node tree,
 * kinds, sizes and, with values != 0, the elements) to f (a FILE *). Returns
 * what splinter_view_open returns for the bytes; on error it still prints as
 * much of the footer as it could parse. Used by `quire splinter dump`. */
QUIRE_API int splinter_dump(const void *bytes, size_t len, void *f, int values);

#ifdef __cplusplus
}
#endif
#endif
