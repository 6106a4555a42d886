/*
 * comm.c - the checked communicator wrappers and the launch environment (see
 * include/simclr/dist.h). The wrappers validate arguments once for every implementation and
 * prefix a failure with the operation and the calling rank, so that a message read in a
 * multi-rank log says who saw what.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "simclr/dist.h"

static sc_status env_int(const char *name, int lo, int hi, int *out, int *found) {
    const char *v = getenv(name);
    *found = v != NULL && v[0] != '\0';
    if (!*found) return SC_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return sc_errorf(SC_ERR_CONFIG, "environment variable %s='%s' is not a number in [%d, %d]", name, v, lo, hi);
    *out = (int)x;
    return SC_OK;
}

sc_status sc_dist_env_read(sc_dist_env *env) {
    static const char *const sets[3][4] = {
        {"RANK", "WORLD_SIZE", "LOCAL_RANK", "RANK"},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_RANK"},
        {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_PROCID"},
    };
    memset(env, 0, sizeof *env);
    env->world_size = 1;
    env->source = "none";
    for (int s = 0; s < 3; s++) {
        int rank = 0, world = 1, local = 0, have_rank, have_world, have_local;
        SC_TRY(env_int(sets[s][0], 0, 1 << 20, &rank, &have_rank));
        if (!have_rank) continue;
        SC_TRY(env_int(sets[s][1], 1, 1 << 20, &world, &have_world));
        if (!have_world) return sc_errorf(SC_ERR_CONFIG, "environment variable %s is set but %s is not", sets[s][0], sets[s][1]);
        if (rank >= world)
            return sc_errorf(SC_ERR_CONFIG, "environment: %s=%d is not below %s=%d", sets[s][0], rank, sets[s][1], world);
        SC_TRY(env_int(sets[s][2], 0, 1 << 20, &local, &have_local));
        env->rank = rank;
        env->world_size = world;
        env->local_rank = have_local ? local : 0;
        env->source = sets[s][3];
        break;
    }
    const char *addr = getenv("MASTER_ADDR");
    if (!addr || !addr[0]) addr = "127.0.0.1";
    if (strlen(addr) >= sizeof env->master_addr)
        return sc_errorf(SC_ERR_CONFIG, "environment variable MASTER_ADDR is too long (%zu bytes)", strlen(addr));
    strcpy(env->master_addr, addr);
    int port = 29500, have_port;
    SC_TRY(env_int("MASTER_PORT", 1, 65535, &port, &have_port));
    env->master_port = port;
    return SC_OK;
}

int sc_dist_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port ? port : 29500;
}

static int valid_dtype(sc_dtype dt) { return dt == SC_F32 || dt == SC_F64 || dt == SC_I32; }

static sc_status check(sc_comm *c, const char *op, int64_t count, sc_dtype dt) {
    SC_CHECK(c != NULL && c->ops != NULL, "%s on a NULL communicator", op);
    if (count < 0) return sc_errorf(SC_ERR_ARG, "rank %d: %s of %lld elements", c->global_rank, op, (long long)count);
    if (!valid_dtype(dt)) return sc_errorf(SC_ERR_ARG, "rank %d: %s of dtype %d (F32, F64 or I32 only)", c->global_rank, op, (int)dt);
    return SC_OK;
}

static sc_status wrap(sc_comm *c, const char *op, sc_status st) {
    if (st == SC_OK) return SC_OK;
    return sc_error_wrap(st, "rank %d: %s over %d ranks (%s)", c->global_rank, op, c->world_size, c->ops->name);
}

sc_status sc_comm_allreduce_sum(sc_comm *c, void *buf, int64_t count, sc_dtype dt) {
    SC_TRY(check(c, "all-reduce", count, dt));
    return wrap(c, "all-reduce", c->ops->allreduce(c, buf, count, dt, SC_REDUCE_SUM));
}

sc_status sc_comm_allreduce_mean(sc_comm *c, void *buf, int64_t count, sc_dtype dt) {
    SC_TRY(check(c, "all-reduce (mean)", count, dt));
    if (dt == SC_I32) return sc_errorf(SC_ERR_ARG, "rank %d: the mean all-reduce takes F32 or F64", c->global_rank);
    return wrap(c, "all-reduce (mean)", c->ops->allreduce(c, buf, count, dt, SC_REDUCE_MEAN));
}

sc_status sc_comm_allgather(sc_comm *c, const void *send, void *recv, int64_t count, sc_dtype dt) {
    SC_TRY(check(c, "all-gather", count, dt));
    return wrap(c, "all-gather", c->ops->allgather(c, send, recv, count, dt));
}

sc_status sc_comm_reduce_scatter_sum(sc_comm *c, const void *send, void *recv, int64_t count, sc_dtype dt) {
    SC_TRY(check(c, "reduce-scatter", count, dt));
    return wrap(c, "reduce-scatter", c->ops->reduce_scatter_sum(c, send, recv, count, dt));
}

sc_status sc_comm_broadcast(sc_comm *c, void *buf, int64_t count, sc_dtype dt, int root) {
    SC_TRY(check(c, "broadcast", count, dt));
    if (root < 0 || root >= c->world_size)
        return sc_errorf(SC_ERR_ARG, "rank %d: broadcast from root %d of %d ranks", c->global_rank, root, c->world_size);
    return wrap(c, "broadcast", c->ops->broadcast(c, buf, count, dt, root));
}

sc_status sc_comm_barrier(sc_comm *c) {
    SC_TRY(check(c, "barrier", 0, SC_I32));
    return wrap(c, "barrier", c->ops->barrier(c));
}

sc_status sc_comm_split(sc_comm *c, int group_size, sc_comm **out) {
    SC_TRY(check(c, "split", 0, SC_I32));
    if (group_size < 1 || c->world_size % group_size)
        return sc_errorf(SC_ERR_CONFIG, "rank %d: a group of %d ranks does not divide the %d ranks", c->global_rank,
                         group_size, c->world_size);
    return wrap(c, "split", c->ops->split(c, group_size, out));
}

sc_status sc_comm_dup(sc_comm *c, sc_comm **out) {
    SC_TRY(check(c, "dup", 0, SC_I32));
    return wrap(c, "dup", c->ops->dup(c, out));
}

sc_status sc_comm_iallreduce_mean(sc_comm *c, void *buf, int64_t count, sc_dtype dt) {
    SC_TRY(check(c, "asynchronous all-reduce (mean)", count, dt));
    if (dt == SC_I32) return sc_errorf(SC_ERR_ARG, "rank %d: the mean all-reduce takes F32 or F64", c->global_rank);
    return wrap(c, "asynchronous all-reduce (mean)", c->ops->iallreduce(c, buf, count, dt, SC_REDUCE_MEAN));
}

sc_status sc_comm_wait_all(sc_comm *c) {
    SC_TRY(check(c, "wait for the asynchronous all-reduces", 0, SC_I32));
    return wrap(c, "asynchronous all-reduce", c->ops->wait_all(c));
}

void sc_comm_abort(sc_comm *c) {
    if (c) c->ops->abort(c);
}

void sc_comm_destroy(sc_comm *c) {
    if (c) c->ops->destroy(c);
}
