/*
 * dist_test_util.h - run a function as N ranks in forked processes, for the distributed tests.
 *
 * Each child gets its sc_dist_env (rank, world size, 127.0.0.1 and a port free a moment ago)
 * and returns its own count of failed checks as its exit status, so the parent fails when any
 * rank did. A child that does not finish within the limit is killed and counts as failed.
 */
#ifndef SIMCLR_TEST_DIST_UTIL_H
#define SIMCLR_TEST_DIST_UTIL_H

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/dist.h"

/* A TCP port that was free when asked (the kernel's pick). */
static int sc_test_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port ? port : 29500;
}

typedef int (*sc_rank_fn)(const sc_dist_env *env, void *arg); /* returns failed checks */

/* Run fn as `world` ranks; returns the number of ranks that failed (or were killed after
 * limit_s seconds). */
static int sc_test_run_ranks(int world, sc_rank_fn fn, void *arg, double limit_s) {
    sc_dist_env env = {.world_size = world, .master_port = sc_test_free_port(), .source = "test"};
    snprintf(env.master_addr, sizeof env.master_addr, "127.0.0.1");
    pid_t pid[64];
    fflush(stdout);
    for (int r = 0; r < world; r++) {
        pid[r] = fork();
        if (pid[r] == 0) {
            env.rank = env.local_rank = r;
            sc_test_checks_failed = 0;
            int failed = fn(&env, arg) + sc_test_checks_failed;
            fflush(stdout);
            _exit(failed > 100 ? 100 : failed);
        }
    }
    int bad = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int done = 0; done < world;) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p > 0) {
            done++;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad++;
            continue;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) > limit_s) {
            for (int r = 0; r < world; r++) kill(pid[r], SIGKILL);
            limit_s = 1e9;
        }
        usleep(2000);
    }
    return bad;
}

#endif /* SIMCLR_TEST_DIST_UTIL_H */
