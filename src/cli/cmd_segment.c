/*
 * cli/cmd_segment.c — `quire segment inspect|build`: look inside a segment
 * file (footer, volume table, every checksum), or build one from a
 * directory of page files (for tests and experiments). Format:
 * docs/SEGMENT.md.
 */
#include "cli/cli.h"
#include "quire/ids.h"
#include "quire/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char quire_cmd_segment_summary[] = "inspect or build segment files";

static void help(void) {
  printf("usage: quire segment inspect [--pages] [LIMITS] FILE\n"
         "       quire segment build -o FILE [--sid ID] [LIMITS] DIR\n"
         "\n"
         "inspect  validates FILE (footer, index, limits) and prints the footer and\n"
         "         the volume table, then verifies every page checksum. --pages also\n"
         "         lists each page. Exits 1 if anything is corrupt.\n"
         "build    makes a segment from DIR/<volume id>/<page index>, each page\n"
         "         file exactly 4096 bytes; a fresh segment id unless --sid.\n"
         "\n"
         "LIMITS   --max-bytes N (default 16m), --max-volumes N (1024),\n"
         "         --max-pages N (4084); inspect rejects segments over them.\n");
}

static int parse_limit(const char *cmd, int c, const char *arg, quire_segment_limits *lim) {
  unsigned long long v;
  if (cli_parse_u64(arg, &v) || v == 0) return cli_usage_error(cmd, "bad limit '%s'", arg);
  if (c == 'B') lim->target_bytes = v;
  if (c == 'V') lim->max_volumes = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
  if (c == 'P') lim->max_pages = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
  return 0;
}

static void print_gid(const quire_gid *g) {
  char text[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(g, text);
  fputs(text, stdout);
}

static int inspect(int argc, char **argv) {
  static const struct option opts[] = {{"pages", no_argument, 0, 'p'},
                                       {"max-bytes", required_argument, 0, 'B'},
                                       {"max-volumes", required_argument, 0, 'V'},
                                       {"max-pages", required_argument, 0, 'P'},
                                       {0, 0, 0, 0}};
  quire_segment_limits lim;
  quire_segment_limits_default(&lim);
  int list_pages = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch (c) {
    case 'p': list_pages = 1; break;
    case 'B':
    case 'V':
    case 'P':
      if (parse_limit("segment", c, optarg, &lim)) return CLI_EXIT_USAGE;
      break;
    case ':': return cli_usage_error("segment", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("segment", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind != argc - 1) return cli_usage_error("segment", "inspect needs exactly one FILE");
  if (quire_segment_limits_check(&lim)) return cli_usage_error("segment", "limits out of range");
  const char *path = argv[optind];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cli_fail("segment", -errno, path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = -errno;
    close(fd);
    return cli_fail("segment", rc, path);
  }
  size_t len = (size_t)st.st_size;
  void *map = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (map == MAP_FAILED) return cli_fail("segment", -errno, "mmap");
  quire_segment_view v;
  int rc = quire_segment_open(map, len, &lim, &v);
  if (rc) {
    if (map) munmap(map, len);
    return cli_fail("segment", rc, path);
  }
  printf("file:          %s\n", path);
  printf("segment id:    ");
  print_gid(&v.sid);
  printf("\nformat:        version %d, page size %u\n", QUIRE_SEGMENT_VERSION, QUIRE_PAGE_SIZE);
  printf("size:          %llu bytes (= 4108 x %u pages + 24 x %u volumes + 64)\n", (unsigned long long)v.size,
         v.page_count, v.volume_count);
  printf("volumes:       %u\n", v.volume_count);
  printf("pages:         %u\n", v.page_count);
  printf("index:         %llu bytes at offset %llu (checksum verified)\n", (unsigned long long)v.index_length,
         (unsigned long long)v.index_offset);
  printf("\n%-22s %10s %10s %10s %10s\n", "volume", "first slot", "pages", "min page", "max page");
  for (uint32_t i = 0; i < v.volume_count; i++) {
    quire_gid vid;
    uint32_t first, count;
    quire_segment_volume_at(&v, i, &vid, &first, &count);
    print_gid(&vid);
    printf(" %10u %10u %10u %10u\n", first, count, quire_segment_slot_pageidx(&v, first),
           quire_segment_slot_pageidx(&v, first + count - 1));
    if (list_pages) {
      for (uint32_t s = first; s < first + count; s++)
        printf("    slot %u page %u checksum %016llx\n", s, quire_segment_slot_pageidx(&v, s),
               (unsigned long long)quire_segment_slot_checksum(&v, s));
    }
  }
  uint32_t bad = 0;
  for (uint32_t s = 0; s < v.page_count; s++) {
    if (quire_segment_page_check(&v, s, v.pages + (size_t)s * QUIRE_PAGE_SIZE)) {
      printf("BAD page checksum: slot %u (page %u)\n", s, quire_segment_slot_pageidx(&v, s));
      bad++;
    }
  }
  printf("\nchecksums:     footer ok, index ok, %u of %u pages ok\n", v.page_count - bad, v.page_count);
  if (map) munmap(map, len);
  if (bad) {
    fprintf(stderr, "quire segment: %s: %u corrupt pages\n", path, bad);
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

struct page_file {
  quire_pageidx idx;
  char name[256];
};

static int page_cmp(const void *a, const void *b) {
  quire_pageidx x = ((const struct page_file *)a)->idx, y = ((const struct page_file *)b)->idx;
  return x < y ? -1 : x > y;
}

static int gid_cmp(const void *a, const void *b) { return quire_gid_cmp(a, b); }

/* Adds every page file of DIR/<vid> to b. */
static int add_volume(quire_segment_builder *b, const char *dir, const quire_gid *vid) {
  char vtext[QUIRE_GID_TEXT_LEN + 1], path[8192];
  quire_gid_format(vid, vtext);
  snprintf(path, sizeof path, "%s/%s", dir, vtext);
  DIR *d = opendir(path);
  if (!d) return cli_fail("segment", -errno, path);
  struct page_file *files = NULL;
  size_t n = 0, cap = 0;
  int status = CLI_EXIT_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    unsigned long long idx;
    if (cli_parse_u64(e->d_name, &idx) || idx == 0 || idx > UINT32_MAX || strpbrk(e->d_name, "kKmMgG")) {
      fprintf(stderr, "quire segment: %s/%s: not a page index\n", path, e->d_name);
      status = CLI_EXIT_FAIL;
      break;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      struct page_file *grown = realloc(files, cap * sizeof *files);
      if (!grown) {
        status = CLI_EXIT_FAIL;
        break;
      }
      files = grown;
    }
    files[n].idx = (quire_pageidx)idx;
    snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
    n++;
  }
  closedir(d);
  if (n) qsort(files, n, sizeof *files, page_cmp);
  for (size_t i = 0; status == CLI_EXIT_OK && i < n; i++) {
    char fpath[8448];
    snprintf(fpath, sizeof fpath, "%s/%s", path, files[i].name);
    FILE *f = fopen(fpath, "rb");
    uint8_t page[QUIRE_PAGE_SIZE + 1];
    size_t got = f ? fread(page, 1, sizeof page, f) : 0;
    if (f) fclose(f);
    if (got != QUIRE_PAGE_SIZE) {
      fprintf(stderr, "quire segment: %s: not exactly %u bytes\n", fpath, QUIRE_PAGE_SIZE);
      status = CLI_EXIT_FAIL;
      break;
    }
    int rc = quire_segment_builder_add(b, vid, files[i].idx, page);
    if (rc) status = cli_fail("segment", rc, fpath);
  }
  free(files);
  return status;
}

static int build(int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, 0, 'o'},    {"sid", required_argument, 0, 's'},
      {"max-bytes", required_argument, 0, 'B'}, {"max-volumes", required_argument, 0, 'V'},
      {"max-pages", required_argument, 0, 'P'}, {0, 0, 0, 0}};
  quire_segment_limits lim;
  quire_segment_limits_default(&lim);
  const char *out = NULL, *sid_text = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":o:", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case 's': sid_text = optarg; break;
    case 'B':
    case 'V':
    case 'P':
      if (parse_limit("segment", c, optarg, &lim)) return CLI_EXIT_USAGE;
      break;
    case ':': return cli_usage_error("segment", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("segment", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (!out) return cli_usage_error("segment", "build needs -o FILE");
  if (optind != argc - 1) return cli_usage_error("segment", "build needs exactly one DIR");
  if (quire_segment_limits_check(&lim)) return cli_usage_error("segment", "limits out of range");
  const char *dir = argv[optind];
  quire_gid sid;
  int rc = sid_text ? quire_gid_parse(sid_text, strlen(sid_text), QUIRE_GID_SEGMENT, &sid)
                    : quire_gid_new(QUIRE_GID_SEGMENT, &sid);
  if (rc)
    return sid_text ? cli_usage_error("segment", "bad segment id '%s'", sid_text)
                    : cli_fail("segment", rc, "id");

  /* Volumes: the subdirectories, in id order. */
  DIR *d = opendir(dir);
  if (!d) return cli_fail("segment", -errno, dir);
  quire_gid *vids = NULL;
  size_t nv = 0, cap = 0;
  int status = CLI_EXIT_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    quire_gid vid;
    if (quire_gid_parse(e->d_name, strlen(e->d_name), QUIRE_GID_VOLUME, &vid)) {
      fprintf(stderr, "quire segment: %s/%s: not a volume id\n", dir, e->d_name);
      status = CLI_EXIT_FAIL;
      break;
    }
    if (nv == cap) {
      cap = cap ? cap * 2 : 16;
      quire_gid *grown = realloc(vids, cap * sizeof *vids);
      if (!grown) {
        status = CLI_EXIT_FAIL;
        break;
      }
      vids = grown;
    }
    vids[nv++] = vid;
  }
  closedir(d);
  if (nv) qsort(vids, nv, sizeof *vids, gid_cmp);
  quire_segment_builder *b = NULL;
  if (status == CLI_EXIT_OK) {
    rc = quire_segment_builder_new(&sid, &lim, &b);
    if (rc) status = cli_fail("segment", rc, "builder");
  }
  for (size_t i = 0; status == CLI_EXIT_OK && i < nv; i++) status = add_volume(b, dir, &vids[i]);
  if (status == CLI_EXIT_OK) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      status = cli_fail("segment", -errno, out);
    } else {
      rc = quire_segment_builder_to_fd(b, fd);
      if (!rc && fsync(fd) != 0) rc = -errno;
      if (close(fd) != 0 && !rc) rc = -errno;
      if (rc) status = cli_fail("segment", rc, out);
    }
  }
  if (status == CLI_EXIT_OK) {
    print_gid(&sid);
    printf(" %u volumes %u pages %llu bytes -> %s\n", quire_segment_builder_volumes(b),
           quire_segment_builder_pages(b), (unsigned long long)quire_segment_builder_size(b), out);
  }
  quire_segment_builder_free(b);
  free(vids);
  return status;
}

int quire_cmd_segment(int argc, char **argv) {
  static const struct cli_sub subs[] = {
      {"inspect", inspect},
      {"build", build},
      {NULL, NULL},
  };
  return cli_dispatch("segment", argc, argv, subs, help);
}
