/*
 * Commit races through one in-process metastore: each round, 16 clients
 * commit to one volume from the same base at once; exactly one wins each
 * LSN, the rest get QUIRE_ECONFLICT, and the log ends with no gaps and no
 * duplicates. (The two-process variant is test_ms_procs.)
 */
#include "ms_test.h"
#include "util/util.h"

#include <pthread.h>
#include <stdlib.h>

enum { CLIENTS = 16 };

static void run(const char *url, unsigned rounds) {
  struct ms_env e;
  env_start(&e, url, 50);
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, CLIENTS);
  struct racer rs[CLIENTS];
  pthread_t ts[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    rs[i] = (struct racer){.cli = e.cli, .vid = vid, .barrier = &start, .rounds = rounds};
    CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &rs[i].client));
    rs[i].won = calloc(rounds, sizeof *rs[i].won);
    rs[i].won_round = calloc(rounds, sizeof *rs[i].won_round);
    CHECK(pthread_create(&ts[i], NULL, race, &rs[i]) == 0);
  }
  unsigned wins = 0, conflicts = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(ts[i], NULL);
    CHECK(rs[i].other == 0);
    wins += rs[i].wins;
    conflicts += rs[i].conflicts;
  }
  CHECK(wins == rounds && conflicts == rounds * (CLIENTS - 1));
  /* Exactly one winner per round, and the log holds exactly the winners. */
  struct quire_msclient_commits pc;
  CHECK_OK(quire__msclient_pull_commits(e.cli, &vid, 1, 0, 1000, NULL, &pc));
  CHECK(pc.count == rounds && pc.latest_lsn == rounds);
  for (unsigned round = 0; round < rounds; round++) {
    int winners = 0;
    for (int i = 0; i < CLIENTS; i++) {
      if (!rs[i].won_round[round]) continue;
      winners++;
      CHECK(quire_gid_cmp(&pc.snaps[round].commit_id, &rs[i].won[round]) == 0);
      CHECK(quire_gid_cmp(&pc.snaps[round].client_id, &rs[i].client) == 0);
    }
    CHECK(winners == 1 && pc.snaps[round].lsn == round + 1);
  }
  quire__msclient_commits_free(&pc);
  printf("race %s: %d clients x %u rounds: %u commits, %u conflicts, 0 gaps, 0 duplicates\n", url, CLIENTS,
         rounds, wins, conflicts);
  for (int i = 0; i < CLIENTS; i++) {
    free(rs[i].won);
    free(rs[i].won_round);
  }
  pthread_barrier_destroy(&start);
  env_stop(&e, 0);
}

int main(void) {
  test_seed();
  unsigned rounds = test_long_mode() ? 200 : 25;
  run("mem://", rounds);
  char *dir = test_tmpdir("ms_race");
  char url[512];
  snprintf(url, sizeof url, "file://%s/objects", dir);
  run(url, rounds);
  test_rmtree(dir);
  free(dir);
  return test_done("metastore_race");
}
