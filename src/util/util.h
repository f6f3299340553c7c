/* util/util.h — all of src/util in one include. */
#ifndef QUIRE_UTIL_H
#define QUIRE_UTIL_H
#include "util/alloc.h"
#include "util/backoff.h"
#include "util/buf.h"
#include "util/cancel.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/limiter.h"
#include "util/log.h"
#include "util/pool.h"
#include "util/varint.h"
#endif
