/*
 * fuzz/replay_main.c — runs a libFuzzer harness over its corpus without
 * libFuzzer, so every corpus replays in ctest under the sanitizers.
 * Arguments are files or directories (every regular file inside, one level
 * and below). Also feeds the empty input and every prefix of each file up to
 * 64 bytes, which catches truncation bugs the corpus alone may miss.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long files;

static void run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  for (size_t k = 0; k < (size_t)n && k < 64; k++) {
    uint8_t *prefix = malloc(k ? k : 1);
    memcpy(prefix, buf, k);
    LLVMFuzzerTestOneInput(prefix, k);
    free(prefix);
  }
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  files++;
}

static void run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: no such corpus %s\n", path);
    exit(1);
  }
  if (!S_ISDIR(st.st_mode)) {
    run_file(path);
    return;
  }
  struct dirent **names;
  int n = scandir(path, &names, NULL, alphasort);
  if (n < 0) exit(1);
  for (int i = 0; i < n; i++) {
    if (names[i]->d_name[0] != '.') {
      char child[4096];
      snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
      run_path(child);
    }
    free(names[i]);
  }
  free(names);
}

int main(int argc, char **argv) {
  LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
  for (int i = 1; i < argc; i++) run_path(argv[i]);
  printf("replayed %ld corpus files\n", files);
  return 0;
}
