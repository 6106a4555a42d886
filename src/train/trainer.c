/*
 * trainer.c - the SimCLR pretraining loop (see include/simclr/train.h).
 *
 * Resources are gathered in one `trainer` struct released by a single cleanup path, so every
 * failure (bad dataset, out of memory, a non-finite loss, a full disk) returns a clear
 * sc_status and leaves the run directory with whatever checkpoints were already committed.
 *
 * Resume: the checkpoint holds the step, the sampler position (epoch, batch in epoch), the
 * weights with BN statistics, the momentum and the open metrics window; every random stream
 * is a pure function of (seed, epoch, sample, view), so restoring those continues the run bit
 * for bit. The run directory is locked (flock on .lock) while a process trains in it, which
 * makes removing the temporary files of a killed save at start-up safe.
 *
 * Data parallel (a communicator of W > 1 ranks): train.batch_size is the global batch; rank r
 * trains on its shard of B / W images of every global batch (the loader's sharding). BN
 * statistics are summed over the BN group (dist.global_bn, dist.bn_group) and embeddings
 * gathered for cross-replica negatives (dist.cross_replica); the gradient buffer is averaged
 * over the ranks in dist.bucket_mb buckets, each one all-reduced as soon as the backward pass
 * has finished it and while the pass goes on (include/simclr/grad_sync.h), on a duplicate of
 * the data communicator with connections of its own, so that the blocking collectives of
 * global BN never wait behind gradient traffic; the optimizer waits for every bucket, so its
 * step is identical everywhere and the weights stay equal. The per-step loss, accuracy and stop
 * request are reduced over the ranks, so every rank takes the same decisions. Only rank 0
 * writes the run directory (logs, metrics, checkpoints, TensorBoard, evaluations). On a CUDA
 * backend the data collectives run on an NCCL communicator made over the given (TCP) one.
 */
#include "simclr/train.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor.h"
#include "feeder.h"
#include "progress.h"
#include "simclr/backend.h"
#include "simclr/checkpoint.h"
#include "simclr/data.h"
#include "simclr/dist.h"
#include "simclr/export.h"
#include "simclr/grad_sync.h"
#include "simclr/log.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/optim.h"
#include "simclr/safetensors.h"
#include "simclr/version.h"


static volatile sig_atomic_t stop_requested = 0;

void sc_train_request_stop(void) { stop_requested = 1; }

/* ---- run directory ------------------------------------------------------------------------ */

static sc_status mkdir_p(const char *path) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return sc_errorf(SC_ERR_IO, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return SC_OK;
}

sc_status sc_run_dir_create(const char *dir, const char *name, char *out, size_t cap) {
    if (!name[0] || strchr(name, '/')) return sc_errorf(SC_ERR_CONFIG, "run.name '%s' must be a non-empty name without '/'", name);
    SC_TRY(mkdir_p(dir));
    for (int k = 1; k < 100000; k++) {
        int n = k == 1 ? snprintf(out, cap, "%s/%s", dir, name) : snprintf(out, cap, "%s/%s-%d", dir, name, k);
        if (n < 0 || (size_t)n >= cap) return sc_errorf(SC_ERR_IO, "%s/%s: path too long", dir, name);
        if (mkdir(out, 0755) == 0) return SC_OK;
        if (errno != EEXIST) return sc_errorf(SC_ERR_IO, "%s: cannot create the run directory: %s", out, strerror(errno));
    }
    return sc_errorf(SC_ERR_IO, "%s/%s: no free run directory name", dir, name);
}

static sc_status write_run_info(const char *run_dir, const sc_config *cfg, sc_backend *be, const char *resumed_from) {
    char path[1100], devices[2048];
    snprintf(path, sizeof path, "%s/run_info.txt", run_dir);
    FILE *f = fopen(path, resumed_from ? "a" : "w");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    sc_backend_describe(devices, sizeof devices);
    if (resumed_from) fprintf(f, "\n---- resumed from %s\n", resumed_from[0] ? resumed_from : "(no checkpoint: step 0)");
    fprintf(f, "simclr %s (git %s)\nrun: %s\ndevice: %s (%s, %d CPU threads)\nseed: %" PRId64 "\n%s", sc_version,
            sc_git_sha, run_dir, cfg->run.device, be->ops->name, be->threads, cfg->run.seed, devices);
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return SC_OK;
}

/* Hold an exclusive flock on <run_dir>/.lock for the life of the process (or until *fd is
 * closed): two processes must never train in, or clean, one run directory. */
static sc_status lock_run_dir(const char *run_dir, int *fd) {
    char path[1100];
    snprintf(path, sizeof path, "%s/.lock", run_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(*fd);
        *fd = -1;
        if (err == EWOULDBLOCK)
            return sc_errorf(SC_ERR_IO, "%s: another simclr process is training in this run directory", run_dir);
        return sc_errorf(SC_ERR_IO, "%s: cannot lock: %s", path, strerror(err));
    }
    return SC_OK;
}

/* The step of a metrics record "{"step": N, ...}", or -1 for other lines (events). */
static int64_t record_step(const char *line) {
    static const char key[] = "{\"step\": ";
    if (strncmp(line, key, sizeof key - 1) != 0) return -1;
    return strtoll(line + sizeof key - 1, NULL, 10);
}

/* Cut metrics.jsonl back to what the checkpoint at `step` had seen: everything before the first
 * record past it (or at it, when the checkpoint's metrics window was still open: that record
 * was a partial one written at a stop), and no incomplete last line. Rewritten atomically. */
static sc_status rewrite_metrics(const char *path, int64_t step, int keep_at_step) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? SC_OK : sc_errorf(SC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL, *line = NULL;
    size_t len = 0, cap = 0, lcap = 0;
    ssize_t n;
    int64_t dropped = -1; /* step of the first record dropped */
    sc_status rc = SC_OK;
    while ((n = getline(&line, &lcap, f)) > 0) {
        if (line[n - 1] != '\n') break; /* killed mid-write */
        int64_t s = record_step(line);
        if (s > step || (s == step && !keep_at_step)) {
            dropped = s;
            break;
        }
        if (len + (size_t)n + 1 > cap) {
            size_t ncap = cap ? 2 * cap : 65536;
            while (ncap < len + (size_t)n + 1) ncap *= 2;
            char *grown = realloc(text, ncap);
            if (!grown) {
                rc = sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            text = grown;
            cap = ncap;
        }
        memcpy(text + len, line, (size_t)n);
        len += (size_t)n;
    }
    int err = ferror(f);
    fclose(f);
    free(line);
    if (rc == SC_OK && err) rc = sc_errorf(SC_ERR_IO, "%s: read failed", path);
    if (rc == SC_OK) {
        const void *parts[1] = {text ? text : ""};
        size_t sizes[1] = {len};
        rc = sc_write_file_atomic(path, parts, sizes, 1);
    }
    if (rc == SC_OK && dropped >= 0)
        SC_INFO("%s: dropped the records from step %lld on (the resumed run writes them again)", path, (long long)dropped);
    free(text);
    return rc;
}

sc_status sc_resume_locate(const sc_config *cfg, const char *resume, sc_resume_point *rp) {
    memset(rp, 0, sizeof *rp);
    struct stat sb;
    int candidates = 0;
    if (strcmp(resume, "auto") == 0) {
        if (!cfg->run.name[0] || strchr(cfg->run.name, '/'))
            return sc_errorf(SC_ERR_CONFIG, "run.name '%s' must be a non-empty name without '/'", cfg->run.name);
        int n = snprintf(rp->run_dir, sizeof rp->run_dir, "%s/%s", cfg->run.dir, cfg->run.name);
        if (n < 0 || (size_t)n >= sizeof rp->run_dir) return sc_errorf(SC_ERR_IO, "%s/%s: path too long", cfg->run.dir, cfg->run.name);
        if (stat(rp->run_dir, &sb) != 0) return SC_OK; /* first start */
        if (!S_ISDIR(sb.st_mode)) return sc_errorf(SC_ERR_IO, "%s: exists and is not a run directory", rp->run_dir);
        sc_status rc = sc_checkpoint_find_latest(rp->run_dir, rp->checkpoint, sizeof rp->checkpoint, &candidates, NULL);
        if (rc != SC_OK && candidates == 0) return SC_OK; /* no checkpoint yet */
        return rc;
    }
    if (stat(resume, &sb) != 0) return sc_errorf(SC_ERR_IO, "--resume %s: no such run directory or checkpoint", resume);
    if (S_ISDIR(sb.st_mode)) {
        snprintf(rp->run_dir, sizeof rp->run_dir, "%s", resume);
        return sc_checkpoint_find_latest(rp->run_dir, rp->checkpoint, sizeof rp->checkpoint, &candidates, NULL);
    }
    if (strlen(resume) >= sizeof rp->checkpoint) return sc_errorf(SC_ERR_IO, "%s: path too long", resume);
    snprintf(rp->checkpoint, sizeof rp->checkpoint, "%s", resume);
    SC_TRY(sc_checkpoint_verify(resume, NULL));
    char parent[1100], grand[1100];
    snprintf(parent, sizeof parent, "%s", resume);
    char *dir = dirname(parent); /* <run>/checkpoints */
    snprintf(grand, sizeof grand, "%s", dir);
    if (strcmp(basename(grand), "checkpoints") == 0) {
        snprintf(grand, sizeof grand, "%s", dir);
        snprintf(rp->run_dir, sizeof rp->run_dir, "%s", dirname(grand));
    }
    return SC_OK;
}

/* ---- the loop ------------------------------------------------------------------------------ */

typedef struct trainer {
    const sc_config *cfg;
    sc_backend *be;
    sc_dataset data;
    sc_loader *loader;
    sc_feeder *feeder; /* loader batches -> the backend, one step ahead */
    sc_model *model;
    sc_loss loss;
    sc_optimizer opt;
    sc_step_graph *graph[2];    /* recorded device steps (CUDA), one per feeder input buffer */
    const void *graph_input[2]; /* the input buffer each of them reads */
    int eager_steps;            /* device steps run without a graph so far */
    int graph_off;              /* no capture: not configured, not supported, or it failed */
    FILE *log_file, *metrics;
    char run_dir[1024];
    int lock_fd;
    int have_loss, have_opt;
    int image_size;            /* side of the views */
    sc_train_state start;      /* where this session starts (all zero for a new run) */
    int64_t last_saved;        /* step of the newest checkpoint on disk, -1 when none */
    int resumed_final;         /* continued from final.safetensors */
    char resumed_path[1100];   /* the checkpoint continued from, "" for a new run */
    sc_monitor mon; /* TensorBoard and the kNN monitor */
    /* data parallel */
    sc_comm *comm;       /* the job's (host) communicator, not owned; NULL for one process */
    sc_comm *dcomm;      /* collectives on backend buffers: comm on the CPU, NCCL on CUDA */
    sc_comm *bn_comm;    /* the global-BN group when it is smaller than the world (owned) */
    sc_comm *gcomm;      /* the gradient all-reduces': a duplicate of dcomm (owned) */
    sc_grad_sync *grad_sync; /* the bucketed gradient mean, started from the backward pass */
    int owns_dcomm;
    int rank, world, root;
    sc_bn_sync bn_sync;
    void *bn_sums;       /* backend memory of bn_sync.local and .global */
} trainer;

static void trainer_release(trainer *t) {
    sc_grad_sync_destroy(t->grad_sync);
    sc_comm_destroy(t->gcomm); /* before its parent; waits for its thread (TCP) */
    if (t->be) sc_backend_free(t->be, t->bn_sums);
    sc_comm_destroy(t->bn_comm);
    if (t->owns_dcomm) sc_comm_destroy(t->dcomm);
    sc_monitor_close(&t->mon);
    if (t->have_opt) sc_optimizer_free(&t->opt);
    if (t->have_loss) sc_loss_free(&t->loss);
    for (int g = 0; g < 2 && t->be; g++) sc_step_graph_free(t->be, t->graph[g]);
    sc_feeder_destroy(t->feeder);
    sc_model_destroy(t->model);
    sc_loader_destroy(t->loader);
    sc_dataset_free(&t->data);
    sc_backend_destroy(t->be);
    if (t->metrics) fclose(t->metrics);
    if (t->log_file) {
        sc_log_attach_file(NULL);
        fclose(t->log_file);
    }
    if (t->lock_fd >= 0) close(t->lock_fd);
}

static sc_status save_checkpoint(trainer *t, const sc_train_state *ts, const char *file, sc_train_result *res) {
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoints/%s", t->run_dir, file);
    double t0 = sc_now();
    SC_TRY(sc_checkpoint_save(path, t->model, sc_optimizer_moment2(&t->opt), t->cfg, ts));
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", path);
    t->last_saved = ts->step;
    snprintf(path, sizeof path, "%s/checkpoints", t->run_dir);
    int pruned = sc_checkpoint_prune(path, t->cfg->checkpoint.keep_last, t->cfg->checkpoint.keep_every);
    SC_INFO("checkpoint %s (step %" PRId64 ", %.2f s%s)", res->checkpoint, ts->step, sc_now() - t0,
            pruned > 0 ? ", older ones pruned" : "");
    return SC_OK;
}

static void write_metrics(FILE *f, const sc_progress_values *v, const sc_optim_report *o, double elapsed) {
    char gnorm[32] = "null"; /* JSON has no NaN: a skipped step's norm is written as null */
    if (isfinite(o->grad_norm)) snprintf(gnorm, sizeof gnorm, "%.9g", o->grad_norm);
    fprintf(f, "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"loss\": %.9g, \"contrastive_acc\": %.9g, \"lr\": %.9g, "
               "\"grad_norm\": %s, \"skipped_steps\": %" PRId64 ", \"images_per_s\": %.6g, \"data_wait\": %.6g, "
               "\"elapsed_s\": %.6g}\n",
            v->step, v->epoch, v->loss, v->accuracy, v->lr, gnorm, o->skipped_total, v->images_per_s,
            v->wait_fraction, elapsed);
    fflush(f);
}

sc_backend_options sc_train_backend_options(const sc_config *cfg) {
    sc_backend_options bo = {.threads = cfg->run.threads,
                             .deterministic = cfg->run.deterministic,
                             .allow_tf32 = cfg->run.tf32,
                             .autotune = cfg->run.cudnn_autotune,
                             .workspace_limit = (size_t)cfg->run.cudnn_workspace_mb << 20};
    return bo;
}

/* The run directory: created or reused, locked, cleaned of temporary files, log, config, metrics. */
static sc_status open_run_dir(trainer *t, const sc_config *cfg, const sc_resume_point *rp, sc_train_result *res) {
    char path[1100];
    if (rp && rp->run_dir[0]) {
        SC_TRY(mkdir_p(rp->run_dir));
        snprintf(t->run_dir, sizeof t->run_dir, "%s", rp->run_dir);
    } else {
        SC_TRY(sc_run_dir_create(cfg->run.dir, cfg->run.name, t->run_dir, sizeof t->run_dir));
    }
    snprintf(res->run_dir, sizeof res->run_dir, "%s", t->run_dir);
    SC_TRY(lock_run_dir(t->run_dir, &t->lock_fd));
    snprintf(path, sizeof path, "%s/checkpoints", t->run_dir);
    SC_TRY(mkdir_p(path));
    int resuming = rp != NULL;
    snprintf(path, sizeof path, "%s/log.txt", t->run_dir);
    if (!(t->log_file = fopen(path, resuming ? "a" : "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    sc_log_attach_file(t->log_file);
    SC_INFO("run directory %s", t->run_dir);
    if (resuming) {
        snprintf(path, sizeof path, "%s/checkpoints", t->run_dir);
        sc_checkpoint_clean_temp(path);
        sc_checkpoint_clean_temp(t->run_dir);
        if (rp->checkpoint[0])
            SC_INFO("resuming from %s: step %lld, epoch %lld, batch %lld of the epoch", rp->checkpoint,
                    (long long)t->start.step, (long long)t->start.epoch, (long long)t->start.batch_in_epoch);
        else
            SC_INFO("no checkpoint in %s yet: starting at step 0", t->run_dir);
    }
    snprintf(path, sizeof path, "%s/config.yaml", t->run_dir);
    SC_TRY(sc_config_write_file(cfg, path));
    snprintf(path, sizeof path, "%s/metrics.jsonl", t->run_dir);
    if (resuming) SC_TRY(rewrite_metrics(path, t->start.step, t->start.window_steps == 0));
    if (!(t->metrics = fopen(path, resuming ? "a" : "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return write_run_info(t->run_dir, cfg, t->be, resuming ? rp->checkpoint : NULL);
}

/* Loss and global BN: the part of the set-up after the model that every rank does. */
static sc_status setup_compute(trainer *t, const sc_config *cfg, int views) {
    sc_contrastive_desc ld = sc_loss_desc_from_config(cfg);
    if (t->world > 1 && cfg->dist.cross_replica)
        SC_TRY(sc_loss_init_dist(&t->loss, t->be, &ld, views, sc_model_out_dim(t->model), SC_F32, t->dcomm));
    else
        SC_TRY(sc_loss_init(&t->loss, t->be, &ld, views, sc_model_out_dim(t->model), SC_F32));
    t->have_loss = 1;
    const int group = cfg->dist.bn_group > 0 ? cfg->dist.bn_group : t->world;
    if (t->world > 1 && cfg->dist.global_bn && group > 1) {
        if (t->world % group)
            return sc_errorf(SC_ERR_CONFIG, "dist.bn_group %d does not divide the %d ranks", group, t->world);
        sc_comm *bc = t->dcomm;
        if (group < t->world) {
            SC_TRY(sc_comm_split(t->dcomm, group, &t->bn_comm));
            bc = t->bn_comm;
        }
        const int64_t n = 2 * (int64_t)sc_model_bn_max_channels(t->model);
        SC_TRY(sc_backend_alloc(t->be, 2 * (size_t)n * sizeof(double), "the global batch-norm sums", &t->bn_sums));
        t->bn_sync = (sc_bn_sync){.comm = bc,
                                  .local = sc_tensor_1d(t->bn_sums, SC_F64, n),
                                  .global = sc_tensor_1d((double *)t->bn_sums + n, SC_F64, n)};
        sc_model_set_bn_sync(t->model, &t->bn_sync);
    }
    return SC_OK;
}

static sc_status setup(trainer *t, const sc_config *cfg, const sc_resume_point *rp, sc_train_result *res) {
    SC_TRY(sc_config_validate(cfg));
    const char *ckpt = rp && rp->checkpoint[0] ? rp->checkpoint : NULL;
    sc_config saved;
    t->last_saved = -1;
    if (ckpt) { /* refuse an incompatible config before anything is touched */
        char *yaml = NULL;
        SC_TRY(sc_checkpoint_read_config(ckpt, &yaml));
        sc_config_defaults(&saved);
        sc_status rc = sc_config_load_string(&saved, yaml, ckpt);
        free(yaml);
        if (rc != SC_OK) return sc_error_wrap(SC_ERR_FORMAT, "%s: its stored config does not load", ckpt);
        SC_TRY(sc_checkpoint_check_config(ckpt, &saved, cfg));
        SC_TRY(sc_checkpoint_verify(ckpt, &t->start));
        t->last_saved = t->start.step;
        snprintf(t->resumed_path, sizeof t->resumed_path, "%s", ckpt);
        char base[1100];
        snprintf(base, sizeof base, "%s", ckpt);
        t->resumed_final = strcmp(basename(base), SC_CHECKPOINT_FINAL) == 0;
    }
    /* device, data and the initial weights first: a bad path, device or init_from file fails
     * before a run directory is created or touched */
    if (cfg->train.batch_size % t->world || cfg->train.batch_size / t->world < 2)
        return sc_errorf(SC_ERR_CONFIG, "train.batch_size %d does not split into %d ranks of at least 2 images",
                         cfg->train.batch_size, t->world);
    sc_backend_options bo = sc_train_backend_options(cfg);
    SC_TRY(sc_backend_create(cfg->run.device, &bo, &t->be));
    /* collectives interleave with host work on every step: no step graph in a multi-rank run */
    t->graph_off = !(cfg->run.cuda_graph && sc_backend_can_capture(t->be)) || t->world > 1;
    if (t->world > 1 && t->be->kind == SC_DEVICE_CUDA) {
        SC_TRY(sc_comm_nccl_create(t->comm, t->be, cfg->dist.timeout_s, &t->dcomm));
        t->owns_dcomm = 1;
    } else {
        t->dcomm = t->comm;
    }
    SC_TRY(sc_dataset_open(cfg, SC_SPLIT_TRAIN, &t->data));
    sc_augment_params aug;
    SC_TRY(sc_augment_params_from_config(cfg, &t->data, &aug));
    t->image_size = aug.out_size;
    const int device_augment = cfg->data.augment_on == SC_AUGMENT_ON_GPU;
    const int local_batch = cfg->train.batch_size / t->world;
    sc_loader_options lo = {.dataset = &t->data, .aug = aug, .mode = SC_LOADER_TRAIN, .batch_size = local_batch,
                            .workers = cfg->data.workers, .prefetch = cfg->data.prefetch, .seed = (uint64_t)cfg->run.seed,
                            .rank = t->rank, .world_size = t->world,
                            .output = device_augment ? SC_LOADER_CROPS : SC_LOADER_VIEWS,
                            .allocator = sc_feeder_allocator(t->be)};
    SC_TRY(sc_loader_create(&lo, &t->loader));
    SC_TRY(sc_feeder_create(t->be, t->loader, &aug, lo.seed, lo.batch_size, device_augment, &t->feeder));
    if (device_augment && t->be->kind == SC_DEVICE_CPU)
        SC_INFO("data.augment_on: gpu on the CPU backend: the loader ships uint8 crops and the CPU reference of the "
                "device augmentation finishes them");
    int64_t per_epoch = sc_loader_batches_per_epoch(t->loader);
    if (per_epoch < 1)
        return sc_errorf(SC_ERR_CONFIG, "train.batch_size %d exceeds the %lld images of %s", cfg->train.batch_size,
                         (long long)t->data.count, t->data.name);
    int views = 2 * local_batch; /* this rank's rows */
    sc_model_config mc = sc_model_config_from(cfg, aug.out_channels);
    SC_TRY(sc_model_create(&mc, t->be, SC_F32, &t->model));
    sc_model_init_params(t->model, (uint64_t)cfg->run.seed);
    sc_schedule sched = sc_schedule_from_config(cfg, per_epoch);
    sc_optim_hparams hp = sc_optim_hparams_from_config(cfg);
    SC_TRY(sc_optimizer_init(&t->opt, t->be, &hp, &sched, sc_model_params(t->model)->total, SC_F32));
    t->have_opt = 1;
    if (ckpt) {
        SC_TRY(sc_checkpoint_load(ckpt, t->model, sc_optimizer_moment2(&t->opt), NULL, NULL));
        sc_optimizer_resume(&t->opt, t->start.step, t->start.skipped_steps);
        if (saved.train.batch_size != cfg->train.batch_size) /* keep the images consumed, in whole batches */
            t->start.batch_in_epoch = t->start.batch_in_epoch * saved.train.batch_size / cfg->train.batch_size;
        if (t->start.batch_in_epoch >= per_epoch) {
            t->start.epoch++;
            t->start.batch_in_epoch = 0;
        }
        res->resumed_from = t->start.step;
    } else if (cfg->model.init_from[0]) {
        SC_TRY(sc_import_encoder(t->model, cfg->model.init_from));
    }

    if (t->world > 1) { /* every rank starts from rank 0's weights and optimizer state */
        sc_tensor p = sc_model_param_buffer(t->model), s = sc_model_state_buffer(t->model);
        SC_TRY(sc_comm_broadcast(t->dcomm, p.data, p.shape[0], SC_F32, 0));
        SC_TRY(sc_comm_broadcast(t->dcomm, s.data, s.shape[0], SC_F32, 0));
        sc_tensor g = sc_model_grad_buffer(t->model);
        const int64_t bucket = (int64_t)(cfg->dist.bucket_mb * (double)(1 << 20)) / (int64_t)sizeof(float);
        SC_TRY(sc_comm_dup(t->dcomm, &t->gcomm));
        SC_TRY(sc_grad_sync_create(t->gcomm, g.data, g.shape[0], SC_F32, bucket > 0 ? bucket : 1, &t->grad_sync));
        if (cfg->dist.overlap) sc_model_set_grad_ready(t->model, sc_grad_sync_ready, t->grad_sync);
    }
    if (!t->root) {
        SC_TRY(sc_model_plan(t->model, views, aug.out_size, aug.out_size));
        return setup_compute(t, cfg, views);
    }
    SC_TRY(open_run_dir(t, cfg, rp, res));
    if (ckpt) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/checkpoints", t->run_dir);
        if (sc_checkpoint_set_aside(dir, t->start.step) < 0) return SC_ERR_IO;
        if (saved.train.batch_size != cfg->train.batch_size)
            SC_WARN("train.batch_size changed: continuing at batch %lld of epoch %lld", (long long)t->start.batch_in_epoch,
                    (long long)t->start.epoch);
    } else if (cfg->model.init_from[0]) {
        SC_INFO("encoder initialised from %s (model.init_from)", cfg->model.init_from);
    }
    if (t->be->kind == SC_DEVICE_CPU)
        SC_INFO("device %s (cpu, %d threads)", cfg->run.device, t->be->threads);
    else
        SC_INFO("device %s (%s GPU %d): %s, TF32 %s, step graphs %s", cfg->run.device, t->be->ops->name,
                t->be->device, t->be->deterministic ? "deterministic" : "fast (not bitwise repeatable)",
                t->be->allow_tf32 ? "on" : "off", t->graph_off ? "off" : "on");
    char stored[64];
    if (sc_dataset_resident(&t->data))
        snprintf(stored, sizeof stored, "%dx%dx%d", t->data.height, t->data.width, t->data.channels);
    else
        snprintf(stored, sizeof stored, "JPEG/PNG files");
    SC_INFO("data %s: %lld images %s -> views %dx%dx%d, %lld steps per epoch, %d workers, augmentation on the %s",
            t->data.name, (long long)t->data.count, stored, aug.out_size, aug.out_size, aug.out_channels,
            (long long)per_epoch, cfg->data.workers, device_augment ? "device" : "CPU");
    if (t->world > 1)
        SC_INFO("data parallel over %d ranks (%s): %d images per rank and step, batch norm %s, negatives %s",
                t->world, t->dcomm->ops->name, local_batch,
                cfg->dist.global_bn ? (cfg->dist.bn_group ? "over groups of dist.bn_group ranks" : "over all ranks") : "per rank",
                cfg->dist.cross_replica ? "from every rank" : "from each rank's batch");
    SC_TRY(sc_model_plan(t->model, views, aug.out_size, aug.out_size));
    const sc_param_table *pt = sc_model_params(t->model);
    SC_INFO("model %s (%s stem, width %g): %lld trainable parameters in %d tensors, features %d, z %d, %.1f MiB of activations",
            sc_config_enum_name("model.arch", cfg->model.arch), sc_config_enum_name("model.stem", cfg->model.stem),
            cfg->model.width, (long long)sc_params_trainable(pt), pt->count, sc_model_feature_dim(t->model),
            sc_model_out_dim(t->model), (double)sc_model_activation_bytes(t->model) / 1048576.0);

    SC_TRY(setup_compute(t, cfg, views));
    SC_TRY(sc_monitor_open(&t->mon, cfg, t->run_dir, &t->data, &aug, t->metrics));
    sc_contrastive_desc ld = t->loss.desc;
    SC_INFO("optimizer %s: peak lr %.4g (%s scaling of %.4g at batch %d), %lld warmup + cosine to step %lld, wd %g; loss %s%s, tau %g",
            sc_config_enum_name("optim.name", cfg->optim.name), sched.peak_lr,
            sc_config_enum_name("optim.lr_scaling", cfg->optim.lr_scaling), cfg->optim.lr, cfg->train.batch_size,
            (long long)sched.warmup_steps, (long long)sched.total_steps, cfg->optim.weight_decay,
            sc_config_enum_name("loss.name", cfg->loss.name), ld.semi_hard ? " (semi-hard)" : "", cfg->loss.temperature);
    return SC_OK;
}

/* One line per reason when some images were skipped. */
static void log_bad_images(const trainer *t) {
    int64_t counts[SC_BAD_REASONS], total = 0;
    sc_loader_bad_counts(t->loader, counts);
    for (int r = 1; r < SC_BAD_REASONS; r++) total += counts[r];
    if (total == 0) return;
    char line[512];
    int n = snprintf(line, sizeof line, "%lld images of %s were skipped and replaced:", (long long)total, t->data.name);
    for (int r = 1; r < SC_BAD_REASONS && n > 0 && (size_t)n < sizeof line; r++)
        if (counts[r]) n += snprintf(line + n, sizeof line - (size_t)n, " %s %lld,", sc_bad_reason_name((sc_bad_reason)r),
                                     (long long)counts[r]);
    if (n > 0 && (size_t)n < sizeof line && line[n - 1] == ',') line[n - 1] = '\0';
    SC_WARN("%s", line);
}

/* The device part of a step, x [2B, S, S, C] -> z -> loss -> dz -> gradients -> update, with
 * the learning rate already in opt->lr: no host transfer in a single process, so it can be
 * recorded. With several ranks: global BN, cross-replica loss and the gradient mean, whose
 * buckets the backward pass starts (the model's gradient-ready hook) and which is complete
 * after sc_grad_sync_finish. */
static sc_status device_step(trainer *t, const sc_tensor *x) {
    sc_tensor z, dz;
    sc_model_forward(t->model, x, 1, NULL, &z);
    if (t->bn_sync.status != SC_OK) return t->bn_sync.status;
    if (t->loss.comm)
        SC_TRY(sc_loss_compute_dist(&t->loss, &z, &dz));
    else
        sc_loss_compute(&t->loss, &z, &dz);
    sc_model_backward(t->model, &dz); /* grads [P]; buckets start as they are finished */
    /* on a failure, buckets may still be in flight: sc_train_run aborts gcomm and
     * trainer_release destroys it (which waits for them) before the model */
    if (t->bn_sync.status != SC_OK) return t->bn_sync.status;
    if (t->grad_sync) SC_TRY(sc_grad_sync_finish(t->grad_sync)); /* grads [P] <- the mean over the ranks */
    sc_tensor params = sc_model_param_buffer(t->model), grads = sc_model_grad_buffer(t->model);
    sc_tensor state = sc_model_state_buffer(t->model);
    sc_optimizer_apply(&t->opt, sc_model_params(t->model), &params, &grads, &state);
    return SC_OK;
}

/* Runs the device step: replays the recorded graph for this input buffer when there is one;
 * otherwise runs it, and after one ordinary step (which sets up plans, scratch and autotuning)
 * records it instead and replays the recording. The feeder alternates between two input
 * buffers and a graph reads fixed addresses, so each buffer gets its own recording. Only full
 * batches are recorded (a graph's shapes are fixed). */
static sc_status run_device_step(trainer *t, const sc_tensor *x, int full_batch) {
    int slot = -1, free_slot = -1;
    for (int g = 0; g < 2; g++) {
        if (t->graph[g] && t->graph_input[g] == x->data) slot = g;
        if (!t->graph[g] && free_slot < 0) free_slot = g;
    }
    if (slot >= 0 && full_batch) {
        sc_step_graph_launch(t->be, t->graph[slot]);
        return SC_OK;
    }
    if (t->graph_off || !full_batch || t->eager_steps == 0 || free_slot < 0) {
        t->eager_steps++;
        return device_step(t, x);
    }
    sc_status st = sc_backend_capture_begin(t->be);
    if (st == SC_OK) {
        st = device_step(t, x);
        sc_status end = sc_backend_capture_end(t->be, &t->graph[free_slot]);
        if (st == SC_OK) st = end;
    }
    if (st != SC_OK) {
        SC_WARN("running steps without a step graph: %s", sc_last_error());
        t->graph_off = 1;
        return device_step(t, x);
    }
    t->graph_input[free_slot] = x->data;
    SC_INFO("recorded the training step on input buffer %d as a CUDA graph; replaying it from now on", free_slot);
    sc_step_graph_launch(t->be, t->graph[free_slot]);
    return SC_OK;
}

/* loss, accuracy: the means over the ranks; *stop: whether any rank was asked to stop. */
static sc_status reduce_step_values(trainer *t, double *loss, double *acc, int *stop) {
    double v[3] = {*loss, *acc, *stop ? 1.0 : 0.0};
    SC_TRY(sc_comm_allreduce_sum(t->comm, v, 3, SC_F64));
    *loss = v[0] / t->world;
    *acc = v[1] / t->world;
    *stop = v[2] > 0;
    return SC_OK;
}

static sc_status run_loop(trainer *t, sc_train_result *res) {
    const sc_config *cfg = t->cfg;
    int64_t per_epoch = sc_loader_batches_per_epoch(t->loader);
    int64_t total = t->opt.schedule.total_steps;
    if (cfg->train.max_steps > 0 && cfg->train.max_steps < total) total = cfg->train.max_steps;
    sc_train_state ts = t->start;
    ts.image_size = t->image_size;
    const int64_t first = ts.step;
    res->steps = ts.step;
    if (t->resumed_final && ts.step >= total) {
        res->already_complete = 1;
        SC_INFO("the run is complete (step %lld of %lld): nothing to train", (long long)ts.step, (long long)total);
        return SC_OK;
    }
    sc_progress prog;
    sc_progress_init(&prog, t->root ? cfg->run.progress : SC_PROGRESS_NEVER, first, total, cfg->run.log_every);
    int stop = 0; /* multi-rank: the stop request agreed on at the last step */
    double start = sc_now(), wait = 0.0;
    int first_window = 1;
    sc_optim_report orep = {0};
    sc_status rc = sc_feeder_start(t->feeder, ts.epoch, ts.batch_in_epoch);
    /* one process reads the flag at the step boundary; ranks act on the value they agreed on */
    while (ts.step < total && rc == SC_OK && !(t->world > 1 ? stop : stop_requested)) {
        sc_tensor x; /* [2b, S, S, C] on the backend: this rank's b = train.batch_size / ranks images */
        int64_t b_epoch, b_index;
        rc = sc_feeder_next(t->feeder, &x, &b_epoch, &b_index, &wait);
        if (rc != SC_OK) break;
        SC_CHECK(b_epoch == ts.epoch && b_index == ts.batch_in_epoch, "feeder gave batch %lld of epoch %lld at batch %lld of %lld",
                 (long long)b_index, (long long)b_epoch, (long long)ts.batch_in_epoch, (long long)ts.epoch);
        sc_abort_context_set(t->rank, t->be->device, ts.step);

        /* x [2b, S, S, C] -> z [2b, D] -> loss -> dz -> gradients -> update */
        const int full_batch = x.shape[0] == 2 * (int64_t)(cfg->train.batch_size / t->world);
        if (t->root) sc_monitor_views(&t->mon, ts.step + 1, t->be, &x);
        sc_optimizer_prepare(&t->opt, ts.step);
        rc = run_device_step(t, &x, full_batch);
        /* the next batch's upload overlaps this step on a device backend */
        if (rc == SC_OK && ts.step + 1 < total && !stop_requested) rc = sc_feeder_prefetch(t->feeder, &wait);
        if (rc != SC_OK) break;

        double loss, acc;
        sc_loss_read(&t->loss, &loss, &acc);
        if (t->world > 1) {
            stop = stop_requested;
            if ((rc = reduce_step_values(t, &loss, &acc, &stop)) != SC_OK) break;
        }
        sc_optimizer_read(&t->opt, &orep);
        ts.skipped_steps = orep.skipped_total;
        if (orep.skipped)
            SC_WARN("step %lld skipped: the gradient norm is %g; weights unchanged (%lld steps skipped so far)",
                    (long long)ts.step, orep.grad_norm, (long long)orep.skipped_total);
        if (!isfinite(loss)) {
            rc = sc_errorf(SC_ERR_DATA, "the loss became %g at step %lld (lr %.4g); stopping without saving a checkpoint "
                           "of non-finite weights%s%s", loss, (long long)ts.step, t->opt.last_lr,
                           res->checkpoint[0] ? "; the last good checkpoint is " : "", res->checkpoint);
            break;
        }
        ts.step++;
        int epoch_done = ++ts.batch_in_epoch == per_epoch;
        if (epoch_done) {
            ts.batch_in_epoch = 0;
            ts.epoch++;
        }
        ts.window_loss += loss;
        ts.window_acc += acc;
        ts.window_steps++;
        double elapsed = sc_now() - start;
        sc_progress_values v = {.step = ts.step, .epoch = ts.epoch, .loss = loss, .accuracy = acc, .lr = t->opt.last_lr,
                                .images_per_s = (double)(ts.step - first) * cfg->train.batch_size / elapsed,
                                .wait_fraction = wait / elapsed};
        sc_progress_update(&prog, &v);
        int logged = ts.step % cfg->run.log_every == 0 || ts.step == total;
        if (logged) {
            v.loss = ts.window_loss / (double)ts.window_steps;
            v.accuracy = ts.window_acc / (double)ts.window_steps;
            v.grad_norm = orep.grad_norm;
            if (t->root) write_metrics(t->metrics, &v, &orep, t->start.elapsed_s + elapsed);
            if (first_window) res->first_loss = v.loss;
            first_window = 0;
            res->final_loss = v.loss;
            ts.window_loss = ts.window_acc = 0.0;
            ts.window_steps = 0;
        }
        if (t->root) sc_monitor_step(&t->mon, t->model, &v, logged);
        if (epoch_done && t->root) rc = sc_monitor_epoch_end(&t->mon, t->model, ts.epoch, ts.step);
        if (rc == SC_OK && t->root && cfg->train.checkpoint_every > 0 && ts.step % cfg->train.checkpoint_every == 0 &&
            ts.step < total) {
            char file[64];
            snprintf(file, sizeof file, "step_%08lld.safetensors", (long long)ts.step);
            ts.elapsed_s = t->start.elapsed_s + (sc_now() - start);
            rc = save_checkpoint(t, &ts, file, res);
        }
    }
    sc_progress_finish(&prog);
    log_bad_images(t);
    res->steps = ts.step;
    res->seconds = sc_now() - start;
    res->images_per_second = res->seconds > 0 ? (double)(ts.step - first) * cfg->train.batch_size / res->seconds : 0.0;
    ts.elapsed_s = t->start.elapsed_s + res->seconds;
    if (rc != SC_OK) return rc;
    if (t->world == 1) stop = stop_requested;
    if (stop && !t->root) {
        res->interrupted = 1;
        return sc_errorf(SC_ERR_INTERRUPTED, "stopped at step %lld with the other ranks; rank 0 saves the state",
                         (long long)ts.step);
    }
    if (stop) {
        res->interrupted = 1;
        if (t->last_saved == ts.step && res->checkpoint[0] == '\0') /* nothing new since the resumed checkpoint */
            snprintf(res->checkpoint, sizeof res->checkpoint, "%s", t->resumed_path);
        if (t->last_saved != ts.step) {
            char file[64];
            snprintf(file, sizeof file, "step_%08lld.safetensors", (long long)ts.step);
            SC_WARN("stop requested: saving step %lld and stopping", (long long)ts.step);
            SC_TRY(save_checkpoint(t, &ts, file, res));
        } else {
            SC_WARN("stop requested at step %lld, which is already saved", (long long)ts.step);
        }
        if (ts.window_steps > 0) { /* the open window as a partial record (replaced on resume) */
            sc_progress_values v = {.step = ts.step, .epoch = ts.epoch, .loss = ts.window_loss / (double)ts.window_steps,
                                    .accuracy = ts.window_acc / (double)ts.window_steps, .lr = t->opt.last_lr,
                                    .images_per_s = res->images_per_second,
                                    .wait_fraction = res->seconds > 0 ? wait / res->seconds : 0.0,
                                    .grad_norm = orep.grad_norm};
            write_metrics(t->metrics, &v, &orep, ts.elapsed_s);
            if (first_window) res->first_loss = v.loss;
            res->final_loss = v.loss;
        }
        return sc_errorf(SC_ERR_INTERRUPTED, "stopped at step %lld; the state is saved in %s", (long long)ts.step,
                         res->checkpoint);
    }
    SC_INFO("trained %lld steps in %.1f s (%.0f images/s, %.0f%% waiting for data)", (long long)(ts.step - first),
            res->seconds, res->images_per_second, res->seconds > 0 ? 100.0 * wait / res->seconds : 0.0);
    return t->root ? save_checkpoint(t, &ts, SC_CHECKPOINT_FINAL, res) : SC_OK;
}

static void write_probe_metrics(FILE *f, const sc_probe_report *p) {
    fprintf(f, "{\"event\": \"linear_probe\", \"train_samples\": %" PRId64 ", \"test_samples\": %" PRId64
               ", \"feature_dim\": %d, \"pretrained_train_acc\": %.6f, \"pretrained_test_acc\": %.6f, "
               "\"pretrained_test_top5\": %.6f, \"pretrained_l2\": %g, \"random_init_train_acc\": %.6f, "
               "\"random_init_test_acc\": %.6f, \"random_init_test_top5\": %.6f, \"random_init_l2\": %g, "
               "\"pretrained_knn_top1\": %.6f, \"pretrained_knn_top5\": %.6f, \"random_init_knn_top1\": %.6f, "
               "\"random_init_knn_top5\": %.6f, \"knn_k\": %d, \"seconds\": %.3f}\n",
            p->train_samples, p->test_samples, p->feature_dim, p->pretrained.train_accuracy,
            p->pretrained.test_accuracy, p->pretrained.test_top5, p->pretrained.l2, p->random_init.train_accuracy,
            p->random_init.test_accuracy, p->random_init.test_top5, p->random_init.l2, p->knn_pretrained.top1,
            p->knn_pretrained.top5, p->knn_random_init.top1, p->knn_random_init.top5, p->knn_pretrained.k, p->seconds);
    fflush(f);
}

sc_status sc_train_run(const sc_config *cfg, const sc_resume_point *rp, sc_comm *comm, sc_train_result *res) {
    memset(res, 0, sizeof *res);
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.lock_fd = -1;
    t.comm = comm && comm->world_size > 1 ? comm : NULL;
    t.rank = t.comm ? comm->rank : 0;
    t.world = t.comm ? comm->world_size : 1;
    t.root = t.rank == 0;
    sc_status rc = setup(&t, cfg, rp, res);
    if (rc == SC_OK) rc = run_loop(&t, res);
    if (rc != SC_OK && rc != SC_ERR_INTERRUPTED && t.comm) { /* the other ranks stop now, not at their timeout */
        sc_comm_abort(t.gcomm); /* NULL-safe: the gradient buckets in flight stop too */
        if (t.owns_dcomm) sc_comm_abort(t.dcomm);
        sc_comm_abort(t.comm);
    }
    if (rc == SC_OK && cfg->eval.linear_probe && t.root) {
        char eval_dir[1100];
        snprintf(eval_dir, sizeof eval_dir, "%s/eval/final", t.run_dir);
        rc = sc_evaluate_encoder(t.model, cfg, SC_EVAL_LINEAR | SC_EVAL_KNN, eval_dir, res->checkpoint, &res->probe);
        if (rc == SC_OK) {
            res->probed = 1;
            write_probe_metrics(t.metrics, &res->probe);
            SC_INFO("linear probe on %lld/%lld images, %d features: pretrained %.2f%% test accuracy, random init %.2f%%; "
                    "kNN %.2f%% vs %.2f%% (%.1f s)",
                    (long long)res->probe.train_samples, (long long)res->probe.test_samples, res->probe.feature_dim,
                    100.0 * res->probe.pretrained.test_accuracy, 100.0 * res->probe.random_init.test_accuracy,
                    100.0 * res->probe.knn_pretrained.top1, 100.0 * res->probe.knn_random_init.top1, res->probe.seconds);
        }
    }
    if (rc == SC_OK && t.root) sc_monitor_final(&t.mon, t.model, res->steps, res->probed ? &res->probe : NULL);
    if (rc != SC_OK && t.log_file) fprintf(t.log_file, "error: %s\n", sc_last_error()); /* main prints it */
    trainer_release(&t);
    stop_requested = 0; /* consumed */
    return rc;
}

sc_status sc_train(const sc_config *cfg, sc_train_result *res) { return sc_train_run(cfg, NULL, NULL, res); }

sc_status sc_train_resume(const sc_config *cfg, const sc_resume_point *rp, sc_train_result *res) {
    return sc_train_run(cfg, rp, NULL, res);
}
