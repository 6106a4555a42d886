/*
 * tcp_comm.c - the CPU communicator: one process per rank, a full mesh of TCP sockets
 * (see include/simclr/dist.h).
 *
 * Rendezvous: rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank opens its own
 * listening socket on an ephemeral port, connects to rank 0 (retrying until the timeout) and
 * says hello (rank, world size, its port); rank 0 answers everyone with the address table.
 * Then rank r connects to ranks 1..r-1 and accepts ranks r+1..world-1, so each pair of ranks
 * shares one socket. IPv4 only.
 *
 * Collectives are built from one progress engine that moves a set of sends and receives at
 * once over non-blocking sockets with poll(), so large exchanges never deadlock on full
 * socket buffers. A peer that closes its socket (exit, crash, SIGKILL: EOF or ECONNRESET)
 * fails the call at once; one that moves no byte for timeout_s fails it then; both name the
 * rank. Reductions are summed in rank order by the owner of each chunk (reduce-scatter, then
 * all-gather of the reduced chunks), so every rank gets the same bits and the traffic per
 * rank is 2 (n - 1) / n of the buffer, as in a ring.
 *
 * Group communicators (split) share the parent's sockets: all members of a group run the
 * same sequence of group and world collectives, so each socket's byte stream stays ordered.
 * A duplicate (dup) gets sockets of its own: a second mesh among the same ranks, each rank
 * listening on a fresh ephemeral port announced to the others by an all-gather over the
 * parent, so it can carry traffic while the parent is busy.
 *
 * Asynchronous all-reduces (iallreduce) go to a FIFO served by one worker thread per
 * communicator (started on first use, signals blocked) that runs the same blocking all-reduce,
 * so the bits are those of the blocking call. The first failure is kept, with its message,
 * and later queued all-reduces are skipped; wait_all returns it on the caller's thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "simclr/dist.h"

#define HELLO_MAGIC 0x53434c52u /* "SCLR" */

typedef struct tcp_shared {
    int world;
    int *fd;      /* [world] socket to each global rank, -1 for self */
    int refs;     /* the world communicator and its groups */
    atomic_int aborted; /* set by abort, possibly while the worker thread is inside progress() */
} tcp_shared;

typedef struct async_op {
    void *buf;
    int64_t count;
    sc_dtype dt;
    sc_reduce_op op;
} async_op;

typedef struct tcp_comm {
    sc_comm pub;
    tcp_shared *sh;
    int *members;     /* [size] global rank of each member, ascending */
    uint8_t *scratch; /* receive space of reductions (the worker's while all-reduces are started) */
    size_t scratch_cap;
    /* asynchronous all-reduces: queue[0 .. issued), run in order by the worker thread */
    int has_worker, quit;
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    async_op *queue;
    int issued, taken, finished, queue_cap;
    sc_status async_status;  /* the first failure, kept: the communicator is then unusable */
    char async_msg[2048];    /* its message (sc_last_error is per thread) */
} tcp_comm;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the progress engine ------------------------------------------------------------------ */

typedef struct xfer {
    int peer;      /* global rank */
    int fd;
    uint8_t *ptr;
    size_t len, done;
} xfer;

static sc_status peer_gone(int peer, const char *what) {
    return sc_errorf(SC_ERR_IO, "rank %d closed its connection (%s): it exited, crashed or was killed", peer, what);
}

/* Move every byte of sends[ns] and recvs[nr]; fail when a peer disconnects or when nothing
 * moves for timeout_s seconds. */
static sc_status progress(tcp_comm *c, xfer *sends, int ns, xfer *recvs, int nr) {
    const int n = ns + nr;
    if (n == 0) return SC_OK;
    if (c->sh->aborted) return sc_errorf(SC_ERR_IO, "the communicator was aborted");
    struct pollfd *pfd = malloc((size_t)n * sizeof *pfd);
    xfer **who = malloc((size_t)n * sizeof *who);
    if (!pfd || !who) {
        free(pfd);
        free(who);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for %d transfers", n);
    }
    double last = now_s();
    sc_status rc = SC_OK;
    for (;;) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            xfer *x = i < ns ? &sends[i] : &recvs[i - ns];
            if (x->done == x->len) continue;
            pfd[k] = (struct pollfd){.fd = x->fd, .events = i < ns ? POLLOUT : POLLIN};
            who[k++] = x;
        }
        if (k == 0) break;
        double left = c->pub.timeout_s - (now_s() - last);
        if (left <= 0) {
            rc = sc_errorf(SC_ERR_IO, "rank %d sent or took nothing for %g s (dist.timeout_s): it is hung, stopped or "
                           "far behind", who[0]->peer, c->pub.timeout_s);
            break;
        }
        int ms = left > 1000.0 ? 1000 : (int)(left * 1000.0) + 1;
        int r = poll(pfd, (nfds_t)k, ms);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = sc_errorf(SC_ERR_IO, "poll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < k && rc == SC_OK; i++) {
            if (!pfd[i].revents) continue;
            xfer *x = who[i];
            ssize_t m;
            if (pfd[i].events == POLLIN) {
                m = recv(x->fd, x->ptr + x->done, x->len - x->done, 0);
                if (m == 0) rc = peer_gone(x->peer, "end of stream");
            } else {
                size_t chunk = x->len - x->done;
                if (chunk > ((size_t)1 << 22)) chunk = (size_t)1 << 22;
                m = send(x->fd, x->ptr + x->done, chunk, MSG_NOSIGNAL);
            }
            if (m > 0) {
                x->done += (size_t)m;
                last = now_s();
            } else if (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                rc = errno == ECONNRESET || errno == EPIPE ? peer_gone(x->peer, strerror(errno))
                                                           : sc_errorf(SC_ERR_IO, "socket to rank %d: %s", x->peer, strerror(errno));
            }
        }
        if (rc != SC_OK) break;
        if (c->sh->aborted) {
            rc = sc_errorf(SC_ERR_IO, "the communicator was aborted");
            break;
        }
    }
    free(pfd);
    free(who);
    return rc;
}

static xfer mk(tcp_comm *c, int member, const void *ptr, size_t len) {
    int peer = c->members[member];
    return (xfer){.peer = peer, .fd = c->sh->fd[peer], .ptr = (uint8_t *)ptr, .len = len};
}

static sc_status scratch(tcp_comm *c, size_t bytes) {
    if (bytes <= c->scratch_cap) return SC_OK;
    uint8_t *p = realloc(c->scratch, bytes);
    if (!p) return sc_errorf(SC_ERR_NOMEM, "out of memory for %zu bytes of receive space", bytes);
    c->scratch = p;
    c->scratch_cap = bytes;
    return SC_OK;
}

/* dst[i] = v_0[i] + v_1[i] + ... + v_{n-1}[i] in that order, where v_j is `mine` for j = me
 * and parts + j * bytes otherwise (then divided by n for the mean). dst may alias mine. */
static void sum_in_rank_order(void *dst, const void *mine, const uint8_t *parts, int n, int me, int64_t count,
                              sc_dtype dt, sc_reduce_op op) {
    size_t bytes = (size_t)count * sc_dtype_size(dt);
#define SUM_TYPED(T)                                                                             \
    do {                                                                                         \
        for (int64_t i = 0; i < count; i++) {                                                    \
            T acc = me == 0 ? ((const T *)mine)[i] : ((const T *)parts)[i];                      \
            for (int j = 1; j < n; j++)                                                          \
                acc += j == me ? ((const T *)mine)[i] : ((const T *)(parts + (size_t)j * bytes))[i]; \
            ((T *)dst)[i] = op == SC_REDUCE_MEAN ? (T)(acc / (T)n) : acc;                        \
        }                                                                                        \
    } while (0)
    if (dt == SC_F32)
        SUM_TYPED(float);
    else if (dt == SC_F64)
        SUM_TYPED(double);
    else
        SUM_TYPED(int32_t);
#undef SUM_TYPED
}

/* ---- collectives ------------------------------------------------------------------------- */

static int64_t chunk_begin(int64_t count, int n, int j) { return count * j / n; }

static sc_status tcp_allreduce(sc_comm *pub, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op) {
    tcp_comm *c = (tcp_comm *)pub;
    const int n = pub->world_size, me = pub->rank;
    if (n == 1 || count == 0) return SC_OK; /* the mean of one rank is its value */
    const size_t es = sc_dtype_size(dt);
    uint8_t *b = buf;
    const int64_t my0 = chunk_begin(count, n, me), my1 = chunk_begin(count, n, me + 1);
    const size_t mybytes = (size_t)(my1 - my0) * es;
    SC_TRY(scratch(c, (size_t)n * mybytes));
    xfer sends[n], recvs[n];
    int ns = 0, nr = 0;
    for (int j = 0; j < n; j++) {
        if (j == me) continue;
        int64_t j0 = chunk_begin(count, n, j), j1 = chunk_begin(count, n, j + 1);
        sends[ns++] = mk(c, j, b + (size_t)j0 * es, (size_t)(j1 - j0) * es);
        recvs[nr++] = mk(c, j, c->scratch + (size_t)j * mybytes, mybytes);
    }
    SC_TRY(progress(c, sends, ns, recvs, nr));
    sum_in_rank_order(b + (size_t)my0 * es, b + (size_t)my0 * es, c->scratch, n, me, my1 - my0, dt, op);
    ns = nr = 0;
    for (int j = 0; j < n; j++) {
        if (j == me) continue;
        int64_t j0 = chunk_begin(count, n, j), j1 = chunk_begin(count, n, j + 1);
        sends[ns++] = mk(c, j, b + (size_t)my0 * es, mybytes);
        recvs[nr++] = mk(c, j, b + (size_t)j0 * es, (size_t)(j1 - j0) * es);
    }
    return progress(c, sends, ns, recvs, nr);
}

static sc_status tcp_allgather(sc_comm *pub, const void *send, void *recv, int64_t count, sc_dtype dt) {
    tcp_comm *c = (tcp_comm *)pub;
    const int n = pub->world_size, me = pub->rank;
    const size_t bytes = (size_t)count * sc_dtype_size(dt);
    uint8_t *r = recv;
    if (r + (size_t)me * bytes != send) memmove(r + (size_t)me * bytes, send, bytes);
    xfer sends[n], recvs[n];
    int ns = 0, nr = 0;
    for (int j = 0; j < n; j++) {
        if (j == me) continue;
        sends[ns++] = mk(c, j, r + (size_t)me * bytes, bytes);
        recvs[nr++] = mk(c, j, r + (size_t)j * bytes, bytes);
    }
    return progress(c, sends, ns, recvs, nr);
}

static sc_status tcp_reduce_scatter(sc_comm *pub, const void *send, void *recv, int64_t count, sc_dtype dt) {
    tcp_comm *c = (tcp_comm *)pub;
    const int n = pub->world_size, me = pub->rank;
    const size_t bytes = (size_t)count * sc_dtype_size(dt);
    const uint8_t *s = send;
    SC_TRY(scratch(c, (size_t)n * bytes));
    xfer sends[n], recvs[n];
    int ns = 0, nr = 0;
    for (int j = 0; j < n; j++) {
        if (j == me) continue;
        sends[ns++] = mk(c, j, s + (size_t)j * bytes, bytes);
        recvs[nr++] = mk(c, j, c->scratch + (size_t)j * bytes, bytes);
    }
    SC_TRY(progress(c, sends, ns, recvs, nr));
    sum_in_rank_order(recv, s + (size_t)me * bytes, c->scratch, n, me, count, dt, SC_REDUCE_SUM);
    return SC_OK;
}

static sc_status tcp_broadcast(sc_comm *pub, void *buf, int64_t count, sc_dtype dt, int root) {
    tcp_comm *c = (tcp_comm *)pub;
    const int n = pub->world_size, me = pub->rank;
    const size_t bytes = (size_t)count * sc_dtype_size(dt);
    xfer x[n];
    int k = 0;
    if (me == root) {
        for (int j = 0; j < n; j++)
            if (j != me) x[k++] = mk(c, j, buf, bytes);
        return progress(c, x, k, NULL, 0);
    }
    x[0] = mk(c, root, buf, bytes);
    return progress(c, NULL, 0, x, 1);
}

static sc_status tcp_barrier(sc_comm *pub) {
    int32_t one = 1;
    return tcp_allreduce(pub, &one, 1, SC_I32, SC_REDUCE_SUM);
}

/* ---- asynchronous all-reduces ------------------------------------------------------------ */

static void *worker_main(void *arg) {
    tcp_comm *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->quit && c->taken == c->issued) pthread_cond_wait(&c->work, &c->mu);
        if (c->quit) break;
        async_op op = c->queue[c->taken++];
        const int run = c->async_status == SC_OK;
        pthread_mutex_unlock(&c->mu);
        sc_status st = run ? tcp_allreduce(&c->pub, op.buf, op.count, op.dt, op.op) : SC_OK;
        pthread_mutex_lock(&c->mu);
        if (st != SC_OK && c->async_status == SC_OK) {
            c->async_status = st;
            snprintf(c->async_msg, sizeof c->async_msg, "%s", sc_last_error());
        }
        c->finished++;
        pthread_cond_broadcast(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static sc_status start_worker(tcp_comm *c) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals (Ctrl-C) go to the other threads */
    int e = pthread_create(&c->worker, NULL, worker_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) return sc_errorf(SC_ERR_NOMEM, "cannot start the all-reduce thread: %s", strerror(e));
    c->has_worker = 1;
    return SC_OK;
}

static sc_status tcp_iallreduce(sc_comm *pub, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op) {
    tcp_comm *c = (tcp_comm *)pub;
    if (pub->world_size == 1 || count == 0) return SC_OK; /* nothing moves: done at once */
    if (!c->has_worker) SC_TRY(start_worker(c));
    pthread_mutex_lock(&c->mu);
    sc_status st = c->async_status;
    if (st == SC_OK && c->issued == c->queue_cap) {
        int cap = c->queue_cap ? 2 * c->queue_cap : 16;
        async_op *q = realloc(c->queue, (size_t)cap * sizeof *q);
        if (q) {
            c->queue = q;
            c->queue_cap = cap;
        } else {
            st = SC_ERR_NOMEM;
        }
    }
    if (st == SC_OK) {
        c->queue[c->issued++] = (async_op){.buf = buf, .count = count, .dt = dt, .op = op};
        pthread_cond_signal(&c->work);
    }
    pthread_mutex_unlock(&c->mu);
    if (st == SC_ERR_NOMEM) return sc_errorf(st, "out of memory for the queue of all-reduces");
    if (st != SC_OK) return sc_errorf(st, "an earlier all-reduce failed: %s", c->async_msg);
    return SC_OK;
}

static sc_status tcp_wait_all(sc_comm *pub) {
    tcp_comm *c = (tcp_comm *)pub;
    if (!c->has_worker) return SC_OK;
    pthread_mutex_lock(&c->mu);
    while (c->finished < c->issued) pthread_cond_wait(&c->done, &c->mu);
    c->issued = c->taken = c->finished = 0;
    sc_status st = c->async_status;
    pthread_mutex_unlock(&c->mu);
    return st == SC_OK ? SC_OK : sc_errorf(st, "%s", c->async_msg);
}

static const sc_comm_ops tcp_ops;

static sc_status make_comm(tcp_shared *sh, int global_rank, int first, int size, double timeout_s, tcp_comm **out) {
    tcp_comm *c = calloc(1, sizeof *c);
    int *members = malloc((size_t)size * sizeof *members);
    if (!c || !members) {
        free(c);
        free(members);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for a communicator");
    }
    for (int j = 0; j < size; j++) members[j] = first + j;
    c->pub = (sc_comm){.ops = &tcp_ops, .rank = global_rank - first, .world_size = size, .global_rank = global_rank,
                       .timeout_s = timeout_s, .impl = c};
    c->sh = sh;
    c->members = members;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->done, NULL);
    sh->refs++;
    *out = c;
    return SC_OK;
}

static sc_status tcp_split(sc_comm *pub, int group_size, sc_comm **out) {
    tcp_comm *c = (tcp_comm *)pub, *g;
    SC_TRY(tcp_barrier(pub)); /* every rank agrees to split */
    int first = c->members[pub->rank / group_size * group_size];
    SC_TRY(make_comm(c->sh, pub->global_rank, first, group_size, pub->timeout_s, &g));
    *out = &g->pub;
    return SC_OK;
}

static sc_status tcp_dup(sc_comm *pub, sc_comm **out);

static void tcp_abort(sc_comm *pub) {
    tcp_comm *c = (tcp_comm *)pub;
    atomic_store(&c->sh->aborted, 1);
    for (int j = 0; j < c->sh->world; j++)
        if (c->sh->fd[j] >= 0) shutdown(c->sh->fd[j], SHUT_RDWR); /* peers see end of stream now */
}

static void tcp_destroy(sc_comm *pub) {
    tcp_comm *c = (tcp_comm *)pub;
    if (c->has_worker) { /* it finishes the all-reduce it runs (at once after an abort) */
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_signal(&c->work);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->worker, NULL);
    }
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->mu);
    free(c->queue);
    if (--c->sh->refs == 0) {
        for (int j = 0; j < c->sh->world; j++)
            if (c->sh->fd[j] >= 0) close(c->sh->fd[j]);
        free(c->sh->fd);
        free(c->sh);
    }
    free(c->members);
    free(c->scratch);
    free(c);
}

static const sc_comm_ops tcp_ops = {
    .name = "tcp",
    .allreduce = tcp_allreduce,
    .allgather = tcp_allgather,
    .reduce_scatter_sum = tcp_reduce_scatter,
    .broadcast = tcp_broadcast,
    .barrier = tcp_barrier,
    .split = tcp_split,
    .dup = tcp_dup,
    .iallreduce = tcp_iallreduce,
    .wait_all = tcp_wait_all,
    .abort = tcp_abort,
    .destroy = tcp_destroy,
};

/* ---- rendezvous ---------------------------------------------------------------------------- */

typedef struct hello {
    uint32_t magic, rank, world, port;
} hello;

typedef struct addr_entry {
    uint32_t ip, port; /* network byte order */
} addr_entry;

static sc_status set_options(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return sc_errorf(SC_ERR_IO, "fcntl: %s", strerror(errno));
    return SC_OK;
}

static sc_status listen_on(uint32_t ip, int port, int backlog, int *fd_out, int *port_out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = ip};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int err = errno;
        close(fd);
        char ipbuf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &ip, ipbuf, sizeof ipbuf);
        return sc_errorf(SC_ERR_IO, "cannot listen on %s:%d: %s", ipbuf, port, strerror(err));
    }
    *fd_out = fd;
    *port_out = ntohs(a.sin_port);
    return SC_OK;
}

/* Accept one connection before `deadline`. */
static sc_status accept_one(int lfd, double deadline, const char *waiting_for, int *out, struct sockaddr_in *peer) {
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) return sc_errorf(SC_ERR_IO, "timed out (dist.timeout_s) waiting for %s to connect", waiting_for);
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        int r = poll(&p, 1, left > 1.0 ? 1000 : (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return sc_errorf(SC_ERR_IO, "poll: %s", strerror(errno));
        if (r <= 0) continue;
        socklen_t len = sizeof *peer;
        int fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
            return sc_errorf(SC_ERR_IO, "accept: %s", strerror(errno));
        }
        sc_status st = set_options(fd);
        if (st != SC_OK) {
            close(fd);
            return st;
        }
        *out = fd;
        return SC_OK;
    }
}

/* Connect to ip:port, retrying refused connections (the peer may not listen yet) until deadline. */
static sc_status connect_retry(uint32_t ip, uint32_t port_n, double deadline, const char *whom, int *out) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = (uint16_t)port_n, .sin_addr.s_addr = ip};
    char ipbuf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, ipbuf, sizeof ipbuf);
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return sc_errorf(SC_ERR_IO, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            sc_status st = set_options(fd);
            if (st != SC_OK) {
                close(fd);
                return st;
            }
            *out = fd;
            return SC_OK;
        }
        int err = errno;
        close(fd);
        if (err != ECONNREFUSED && err != EINTR && err != ETIMEDOUT && err != ENETUNREACH && err != EHOSTUNREACH)
            return sc_errorf(SC_ERR_IO, "cannot connect to %s at %s:%d: %s", whom, ipbuf, ntohs((uint16_t)port_n), strerror(err));
        if (now_s() > deadline)
            return sc_errorf(SC_ERR_IO, "cannot reach %s at %s:%d within dist.timeout_s: %s", whom, ipbuf,
                             ntohs((uint16_t)port_n), strerror(err));
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Read the hello a peer sends on a fresh connection. */
static sc_status recv_hello(int fd, double timeout_s, hello *h) {
    int fds[1] = {fd};
    tcp_shared sh1 = {.world = 1, .fd = fds};
    tcp_comm one = {.pub = {.timeout_s = timeout_s}, .sh = &sh1, .members = (int[]){0}};
    xfer x = {.peer = -1, .fd = fd, .ptr = (uint8_t *)h, .len = sizeof *h};
    return progress(&one, NULL, 0, &x, 1);
}

static sc_status resolve_ipv4(const char *host, uint32_t *ip) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e != 0 || !res) return sc_errorf(SC_ERR_CONFIG, "MASTER_ADDR '%s': %s", host, gai_strerror(e));
    *ip = ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr;
    freeaddrinfo(res);
    return SC_OK;
}

static sc_status rendezvous(const sc_dist_env *env, double timeout_s, int *fd) {
    tcp_comm tmp = {.pub = {.timeout_s = timeout_s, .global_rank = env->rank}};
    tcp_shared sh = {.world = env->world_size, .fd = fd};
    const int n = env->world_size, me = env->rank;
    tmp.sh = &sh;
    int members_all[n];
    for (int j = 0; j < n; j++) members_all[j] = j;
    tmp.members = members_all;
    const double deadline = now_s() + timeout_s;
    uint32_t master_ip = 0;
    SC_TRY(resolve_ipv4(env->master_addr, &master_ip));
    addr_entry table[n];
    int lfd = -1, lport = 0;
    sc_status st;
    if (me == 0) {
        st = listen_on(master_ip, env->master_port, n, &lfd, &lport);
        if (st != SC_OK) return sc_error_wrap(st, "rank 0: rendezvous (MASTER_ADDR, MASTER_PORT)");
        table[0] = (addr_entry){master_ip, htons((uint16_t)env->master_port)};
        for (int k = 1; k < n && st == SC_OK; k++) {
            int cfd;
            struct sockaddr_in peer;
            char what[64];
            snprintf(what, sizeof what, "%d more of %d ranks", n - k, n);
            st = accept_one(lfd, deadline, what, &cfd, &peer);
            if (st != SC_OK) break;
            hello h = {0};
            st = recv_hello(cfd, timeout_s, &h);
            if (st == SC_OK && (h.magic != HELLO_MAGIC || h.world != (uint32_t)n || h.rank == 0 || h.rank >= (uint32_t)n ||
                                fd[h.rank] >= 0))
                st = sc_errorf(SC_ERR_IO, "rendezvous: a bad hello (rank %u of %u; this job has %d ranks; "
                               "another job on MASTER_PORT %d?)", h.rank, h.world, n, env->master_port);
            if (st != SC_OK) {
                close(cfd);
                break;
            }
            fd[h.rank] = cfd;
            table[h.rank] = (addr_entry){peer.sin_addr.s_addr, htons((uint16_t)h.port)};
        }
        close(lfd);
        if (st != SC_OK) return st;
        xfer xs[n];
        for (int j = 1; j < n; j++) xs[j - 1] = mk(&tmp, j, table, sizeof table);
        SC_TRY(progress(&tmp, xs, n - 1, NULL, 0));
        return SC_OK;
    }
    SC_TRY(listen_on(htonl(INADDR_ANY), 0, n, &lfd, &lport));
    st = connect_retry(master_ip, htons((uint16_t)env->master_port), deadline, "rank 0 (MASTER_ADDR:MASTER_PORT)", &fd[0]);
    hello h = {HELLO_MAGIC, (uint32_t)me, (uint32_t)n, (uint32_t)lport};
    if (st == SC_OK) {
        xfer x = mk(&tmp, 0, &h, sizeof h), y = mk(&tmp, 0, table, sizeof table);
        st = progress(&tmp, &x, 1, NULL, 0);
        if (st == SC_OK) st = progress(&tmp, NULL, 0, &y, 1);
    }
    for (int j = 1; j < me && st == SC_OK; j++) {
        char whom[32];
        snprintf(whom, sizeof whom, "rank %d", j);
        st = connect_retry(table[j].ip, table[j].port, deadline, whom, &fd[j]);
        hello hj = {HELLO_MAGIC, (uint32_t)me, (uint32_t)n, 0};
        xfer x = mk(&tmp, j, &hj, sizeof hj);
        if (st == SC_OK) st = progress(&tmp, &x, 1, NULL, 0);
    }
    for (int k = me + 1; k < n && st == SC_OK; k++) {
        int cfd;
        struct sockaddr_in peer;
        st = accept_one(lfd, deadline, "the higher ranks", &cfd, &peer);
        if (st != SC_OK) break;
        hello hk = {0};
        st = recv_hello(cfd, timeout_s, &hk);
        if (st == SC_OK && (hk.magic != HELLO_MAGIC || hk.rank <= (uint32_t)me || hk.rank >= (uint32_t)n || fd[hk.rank] >= 0))
            st = sc_errorf(SC_ERR_IO, "rendezvous: a bad hello from a peer (rank %u)", hk.rank);
        if (st != SC_OK) {
            close(cfd);
            break;
        }
        fd[hk.rank] = cfd;
    }
    close(lfd);
    return st;
}

sc_status sc_comm_tcp_create(const sc_dist_env *env, double timeout_s, sc_comm **out) {
    *out = NULL;
    if (!(timeout_s > 0)) return sc_errorf(SC_ERR_CONFIG, "dist.timeout_s must be positive, not %g", timeout_s);
    tcp_shared *sh = calloc(1, sizeof *sh);
    int *fd = malloc((size_t)env->world_size * sizeof *fd);
    if (!sh || !fd) {
        free(sh);
        free(fd);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for a communicator");
    }
    for (int j = 0; j < env->world_size; j++) fd[j] = -1;
    sh->world = env->world_size;
    sh->fd = fd;
    sc_status st = env->world_size > 1 ? rendezvous(env, timeout_s, fd) : SC_OK;
    tcp_comm *c = NULL;
    if (st == SC_OK) st = make_comm(sh, env->rank, 0, env->world_size, timeout_s, &c);
    if (st != SC_OK) {
        for (int j = 0; j < env->world_size; j++)
            if (fd[j] >= 0) close(fd[j]);
        free(fd);
        free(sh);
        return sc_error_wrap(st, "rank %d of %d: connecting the ranks over TCP", env->rank, env->world_size);
    }
    *out = &c->pub;
    return SC_OK;
}

/* ---- duplicates ------------------------------------------------------------------------------ */

/* Connect this rank to every other member of c in sh->fd (indexed by global rank): ports
 * [size] are the members' listening ports, lfd this rank's listening socket. As in the
 * rendezvous, a rank connects to the lower members and accepts the higher ones; a peer's
 * address is the one its parent connection has. */
static sc_status mesh(tcp_comm *c, tcp_shared *sh, int lfd, const int32_t *ports) {
    const int n = c->pub.world_size, me = c->pub.rank, world = c->sh->world;
    const double deadline = now_s() + c->pub.timeout_s;
    for (int j = 0; j < me; j++) {
        const int peer = c->members[j];
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        if (getpeername(c->sh->fd[peer], (struct sockaddr *)&a, &len) != 0)
            return sc_errorf(SC_ERR_IO, "the address of rank %d: %s", peer, strerror(errno));
        char whom[32];
        snprintf(whom, sizeof whom, "rank %d", peer);
        SC_TRY(connect_retry(a.sin_addr.s_addr, htons((uint16_t)ports[j]), deadline, whom, &sh->fd[peer]));
        hello h = {HELLO_MAGIC, (uint32_t)c->pub.global_rank, (uint32_t)world, 0};
        xfer x = {.peer = peer, .fd = sh->fd[peer], .ptr = (uint8_t *)&h, .len = sizeof h};
        SC_TRY(progress(c, &x, 1, NULL, 0));
    }
    for (int k = me + 1; k < n; k++) {
        int cfd;
        struct sockaddr_in peer;
        SC_TRY(accept_one(lfd, deadline, "the higher ranks (a second connection)", &cfd, &peer));
        hello h = {0};
        sc_status st = recv_hello(cfd, c->pub.timeout_s, &h);
        if (st == SC_OK && (h.magic != HELLO_MAGIC || h.world != (uint32_t)world ||
                            h.rank <= (uint32_t)c->pub.global_rank || h.rank > (uint32_t)c->members[n - 1] ||
                            sh->fd[h.rank] >= 0))
            st = sc_errorf(SC_ERR_IO, "a bad hello from a peer (rank %u) on the second connection", h.rank);
        if (st != SC_OK) {
            close(cfd);
            return st;
        }
        sh->fd[h.rank] = cfd;
    }
    return SC_OK;
}

static sc_status tcp_dup(sc_comm *pub, sc_comm **out) {
    tcp_comm *c = (tcp_comm *)pub, *d = NULL;
    const int n = pub->world_size, world = c->sh->world;
    tcp_shared *sh = calloc(1, sizeof *sh);
    int *fd = malloc((size_t)world * sizeof *fd);
    int32_t *ports = malloc((size_t)n * sizeof *ports);
    sc_status st = sh && fd && ports ? SC_OK : sc_errorf(SC_ERR_NOMEM, "out of memory for a communicator");
    if (st == SC_OK) {
        for (int j = 0; j < world; j++) fd[j] = -1;
        sh->world = world;
        sh->fd = fd;
    }
    int lfd = -1, lport = 0;
    if (st == SC_OK && n > 1) {
        st = listen_on(htonl(INADDR_ANY), 0, n, &lfd, &lport);
        int32_t mine = st == SC_OK ? lport : 0; /* 0: every rank learns that this one failed */
        sc_status ag = tcp_allgather(pub, &mine, ports, 1, SC_I32);
        if (st == SC_OK) st = ag;
        for (int j = 0; j < n && st == SC_OK; j++)
            if (ports[j] == 0) st = sc_errorf(SC_ERR_IO, "rank %d could not open a second listening socket", c->members[j]);
        if (st == SC_OK) st = mesh(c, sh, lfd, ports);
        if (lfd >= 0) close(lfd);
    }
    if (st == SC_OK) st = make_comm(sh, pub->global_rank, c->members[0], n, pub->timeout_s, &d);
    free(ports);
    if (st != SC_OK) {
        for (int j = 0; sh && sh->fd && j < world; j++)
            if (fd[j] >= 0) close(fd[j]);
        free(fd);
        free(sh);
        return st;
    }
    *out = &d->pub;
    return SC_OK;
}
