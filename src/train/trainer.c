/*
 * trainer.c - the SimCLR pretraining loop (see include/simclr/train.h).
 *
 * Resources are gathered in one `trainer` struct released by a single cleanup path, so every
 * failure (bad dataset, out of memory, a non-finite loss) returns a clear sc_status and
 * leaves the run directory with whatever checkpoints were already committed.
 */
#include "simclr/train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feeder.h"
#include "progress.h"
#include "simclr/backend.h"
#include "simclr/checkpoint.h"
#include "simclr/data.h"
#include "simclr/log.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/optim.h"
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

static sc_status write_run_info(const char *run_dir, const sc_config *cfg, sc_backend *be) {
    char path[1100], devices[2048];
    snprintf(path, sizeof path, "%s/run_info.txt", run_dir);
    FILE *f = fopen(path, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    sc_backend_describe(devices, sizeof devices);
    fprintf(f, "simclr %s (git %s)\nrun: %s\ndevice: %s (%s, %d CPU threads)\nseed: %" PRId64 "\n%s", sc_version,
            sc_git_sha, run_dir, cfg->run.device, be->ops->name, be->threads, cfg->run.seed, devices);
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
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
    FILE *log_file, *metrics;
    char run_dir[1024];
    int have_loss, have_opt;
} trainer;

static void trainer_release(trainer *t) {
    if (t->have_opt) sc_optimizer_free(&t->opt);
    if (t->have_loss) sc_loss_free(&t->loss);
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
}

static sc_status save_checkpoint(trainer *t, const sc_train_state *ts, const char *file, sc_train_result *res) {
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoints/%s", t->run_dir, file);
    double t0 = sc_now();
    SC_TRY(sc_checkpoint_save(path, t->model, t->cfg, ts));
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", path);
    SC_INFO("checkpoint %s (step %" PRId64 ", %.2f s)", path, ts->step, sc_now() - t0);
    return SC_OK;
}

static void write_metrics(FILE *f, const sc_progress_values *v, double elapsed) {
    fprintf(f, "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"loss\": %.9g, \"contrastive_acc\": %.9g, \"lr\": %.9g, "
               "\"images_per_s\": %.6g, \"data_wait\": %.6g, \"elapsed_s\": %.6g}\n",
            v->step, v->epoch, v->loss, v->accuracy, v->lr, v->images_per_s, v->wait_fraction, elapsed);
    fflush(f);
}

static sc_status setup(trainer *t, const sc_config *cfg, sc_train_result *res) {
    char path[1100];
    SC_TRY(sc_config_validate(cfg));
    /* device and data first: a bad path or device fails before a run directory exists */
    sc_backend_options bo = {.threads = cfg->run.threads};
    SC_TRY(sc_backend_create(cfg->run.device, &bo, &t->be));
    SC_TRY(sc_dataset_open(cfg, SC_SPLIT_TRAIN, &t->data));
    SC_TRY(sc_run_dir_create(cfg->run.dir, cfg->run.name, t->run_dir, sizeof t->run_dir));
    snprintf(res->run_dir, sizeof res->run_dir, "%s", t->run_dir);
    snprintf(path, sizeof path, "%s/checkpoints", t->run_dir);
    SC_TRY(mkdir_p(path));
    snprintf(path, sizeof path, "%s/log.txt", t->run_dir);
    if (!(t->log_file = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    sc_log_attach_file(t->log_file);
    SC_INFO("run directory %s", t->run_dir);
    snprintf(path, sizeof path, "%s/config.yaml", t->run_dir);
    SC_TRY(sc_config_write_file(cfg, path));
    snprintf(path, sizeof path, "%s/metrics.jsonl", t->run_dir);
    if (!(t->metrics = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    SC_TRY(write_run_info(t->run_dir, cfg, t->be));
    SC_INFO("device %s (%s, %d CPU threads)", cfg->run.device, t->be->ops->name, t->be->threads);
    if (t->be->kind == SC_DEVICE_CPU && strcmp(cfg->run.device, "auto") == 0 && sc_cuda_device_count() > 0)
        SC_WARN("a GPU is visible but this build has no CUDA training backend yet: training on the CPU");

    sc_augment_params aug;
    SC_TRY(sc_augment_params_from_config(cfg, &t->data, &aug));
    const int device_augment = cfg->data.augment_on == SC_AUGMENT_ON_GPU;
    sc_loader_options lo = {.dataset = &t->data, .aug = aug, .mode = SC_LOADER_TRAIN, .batch_size = cfg->train.batch_size,
                            .workers = cfg->data.workers, .prefetch = cfg->data.prefetch, .seed = (uint64_t)cfg->run.seed,
                            .rank = 0, .world_size = 1, .output = device_augment ? SC_LOADER_CROPS : SC_LOADER_VIEWS,
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
    char stored[64];
    if (sc_dataset_resident(&t->data))
        snprintf(stored, sizeof stored, "%dx%dx%d", t->data.height, t->data.width, t->data.channels);
    else
        snprintf(stored, sizeof stored, "JPEG/PNG files");
    SC_INFO("data %s: %lld images %s -> views %dx%dx%d, %lld steps per epoch, %d workers, augmentation on the %s",
            t->data.name, (long long)t->data.count, stored, aug.out_size, aug.out_size, aug.out_channels,
            (long long)per_epoch, cfg->data.workers, device_augment ? "device" : "CPU");

    int views = 2 * cfg->train.batch_size;
    sc_model_config mc = sc_model_config_from(cfg, aug.out_channels);
    SC_TRY(sc_model_create(&mc, t->be, SC_F32, &t->model));
    sc_model_init_params(t->model, (uint64_t)cfg->run.seed);
    SC_TRY(sc_model_plan(t->model, views, aug.out_size, aug.out_size));
    const sc_param_table *pt = sc_model_params(t->model);
    SC_INFO("model %s (%s stem, width %g): %lld trainable parameters in %d tensors, features %d, z %d, %.1f MiB of activations",
            sc_config_enum_name("model.arch", cfg->model.arch), sc_config_enum_name("model.stem", cfg->model.stem),
            cfg->model.width, (long long)sc_params_trainable(pt), pt->count, sc_model_feature_dim(t->model),
            sc_model_out_dim(t->model), (double)sc_model_activation_bytes(t->model) / 1048576.0);

    SC_TRY(sc_loss_init(&t->loss, t->be, cfg->loss.temperature, views, sc_model_out_dim(t->model), SC_F32));
    t->have_loss = 1;
    sc_schedule sched = sc_schedule_from_config(cfg, per_epoch);
    sc_optim_hparams hp = sc_optim_hparams_from_config(cfg);
    SC_TRY(sc_optimizer_init(&t->opt, t->be, &hp, &sched, SC_F32));
    t->have_opt = 1;
    SC_INFO("optimizer %s: peak lr %.4g (%s scaling of %.4g at batch %d), %lld warmup + cosine to step %lld, wd %g, tau %g",
            sc_config_enum_name("optim.name", cfg->optim.name), sched.peak_lr,
            sc_config_enum_name("optim.lr_scaling", cfg->optim.lr_scaling), cfg->optim.lr, cfg->train.batch_size,
            (long long)sched.warmup_steps, (long long)sched.total_steps, cfg->optim.weight_decay, cfg->loss.temperature);
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

static sc_status run_loop(trainer *t, sc_train_result *res) {
    const sc_config *cfg = t->cfg;
    int64_t per_epoch = sc_loader_batches_per_epoch(t->loader);
    int64_t total = t->opt.schedule.total_steps;
    if (cfg->train.max_steps > 0 && cfg->train.max_steps < total) total = cfg->train.max_steps;
    sc_train_state ts = {0};
    sc_progress prog;
    sc_progress_init(&prog, cfg->run.progress, total, cfg->run.log_every);
    double start = sc_now(), wait = 0.0, win_loss = 0.0, win_acc = 0.0;
    int win_n = 0, first_window = 1;
    sc_status rc = sc_feeder_start(t->feeder, ts.epoch, ts.batch_in_epoch);
    stop_requested = 0;
    while (ts.step < total && rc == SC_OK && !stop_requested) {
        sc_tensor x; /* [2B, S, S, C] on the backend */
        int64_t b_epoch, b_index;
        rc = sc_feeder_next(t->feeder, &x, &b_epoch, &b_index, &wait);
        if (rc != SC_OK) break;
        SC_CHECK(b_epoch == ts.epoch && b_index == ts.batch_in_epoch, "feeder gave batch %lld of epoch %lld at batch %lld of %lld",
                 (long long)b_index, (long long)b_epoch, (long long)ts.batch_in_epoch, (long long)ts.epoch);
        sc_abort_context_set(0, t->be->device, ts.step);

        /* x [2B, S, S, C] -> z [2B, D] -> loss -> dz -> gradients -> update */
        sc_tensor z, dz;
        sc_model_forward(t->model, &x, 1, NULL, &z);
        sc_loss_compute(&t->loss, &z, &dz);
        sc_model_backward(t->model, &dz);
        sc_tensor params = sc_model_param_buffer(t->model), grads = sc_model_grad_buffer(t->model);
        sc_tensor state = sc_model_state_buffer(t->model);
        sc_optimizer_step(&t->opt, sc_model_params(t->model), &params, &grads, &state, ts.step);
        /* the next batch's upload overlaps this step on a device backend */
        if (ts.step + 1 < total && !stop_requested) rc = sc_feeder_prefetch(t->feeder, &wait);
        if (rc != SC_OK) break;

        double loss, acc;
        sc_loss_read(&t->loss, &loss, &acc);
        if (!isfinite(loss)) {
            rc = sc_errorf(SC_ERR_DATA, "the loss became %g at step %lld (lr %.4g); stopping without saving a checkpoint "
                           "of non-finite weights%s%s", loss, (long long)ts.step, t->opt.last_lr,
                           res->checkpoint[0] ? "; the last good checkpoint is " : "", res->checkpoint);
            break;
        }
        ts.step++;
        if (++ts.batch_in_epoch == per_epoch) {
            ts.batch_in_epoch = 0;
            ts.epoch++;
        }
        win_loss += loss;
        win_acc += acc;
        win_n++;
        double elapsed = sc_now() - start;
        sc_progress_values v = {.step = ts.step, .epoch = ts.epoch, .loss = loss, .accuracy = acc, .lr = t->opt.last_lr,
                                .images_per_s = (double)ts.step * cfg->train.batch_size / elapsed,
                                .wait_fraction = wait / elapsed};
        sc_progress_update(&prog, &v);
        if (ts.step % cfg->run.log_every == 0 || ts.step == total) {
            v.loss = win_loss / win_n;
            v.accuracy = win_acc / win_n;
            write_metrics(t->metrics, &v, elapsed);
            if (first_window) res->first_loss = v.loss;
            first_window = 0;
            res->final_loss = v.loss;
            win_loss = win_acc = 0.0;
            win_n = 0;
        }
        if (cfg->train.checkpoint_every > 0 && ts.step % cfg->train.checkpoint_every == 0 && ts.step < total) {
            char file[64];
            snprintf(file, sizeof file, "step_%08lld.safetensors", (long long)ts.step);
            rc = save_checkpoint(t, &ts, file, res);
        }
    }
    sc_progress_finish(&prog);
    if (rc == SC_OK && win_n > 0) { /* a partial logging window (stopped early) */
        double elapsed = sc_now() - start;
        sc_progress_values v = {.step = ts.step, .epoch = ts.epoch, .loss = win_loss / win_n, .accuracy = win_acc / win_n,
                                .lr = t->opt.last_lr, .images_per_s = (double)ts.step * cfg->train.batch_size / elapsed,
                                .wait_fraction = wait / elapsed};
        write_metrics(t->metrics, &v, elapsed);
        if (first_window) res->first_loss = v.loss;
        res->final_loss = v.loss;
    }
    log_bad_images(t);
    res->steps = ts.step;
    res->seconds = sc_now() - start;
    res->images_per_second = res->seconds > 0 ? (double)ts.step * cfg->train.batch_size / res->seconds : 0.0;
    if (rc != SC_OK) return rc;
    if (stop_requested) {
        char file[64];
        snprintf(file, sizeof file, "step_%08lld.safetensors", (long long)ts.step);
        res->interrupted = 1;
        SC_WARN("stop requested: saving step %lld and stopping", (long long)ts.step);
        SC_TRY(save_checkpoint(t, &ts, file, res));
        return sc_errorf(SC_ERR_INTERRUPTED, "stopped at step %lld; the state is saved in %s", (long long)ts.step,
                         res->checkpoint);
    }
    SC_INFO("trained %lld steps in %.1f s (%.0f images/s, %.0f%% waiting for data)", (long long)ts.step, res->seconds,
            res->images_per_second, res->seconds > 0 ? 100.0 * wait / res->seconds : 0.0);
    return save_checkpoint(t, &ts, "final.safetensors", res);
}

static void write_probe_metrics(FILE *f, const sc_probe_report *p) {
    fprintf(f, "{\"event\": \"linear_probe\", \"train_samples\": %" PRId64 ", \"test_samples\": %" PRId64
               ", \"feature_dim\": %d, \"pretrained_train_acc\": %.6f, \"pretrained_test_acc\": %.6f, "
               "\"random_init_train_acc\": %.6f, \"random_init_test_acc\": %.6f, \"seconds\": %.3f}\n",
            p->train_samples, p->test_samples, p->feature_dim, p->pretrained.train_accuracy,
            p->pretrained.test_accuracy, p->random_init.train_accuracy, p->random_init.test_accuracy, p->seconds);
    fflush(f);
}

sc_status sc_train(const sc_config *cfg, sc_train_result *res) {
    memset(res, 0, sizeof *res);
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    sc_status rc = setup(&t, cfg, res);
    if (rc == SC_OK) rc = run_loop(&t, res);
    if (rc == SC_OK && cfg->eval.linear_probe) {
        rc = sc_linear_probe(t.model, cfg, &res->probe);
        if (rc == SC_OK) {
            res->probed = 1;
            write_probe_metrics(t.metrics, &res->probe);
            SC_INFO("linear probe on %lld/%lld images, %d features: pretrained %.2f%% test accuracy, random init %.2f%% (%.1f s)",
                    (long long)res->probe.train_samples, (long long)res->probe.test_samples, res->probe.feature_dim,
                    100.0 * res->probe.pretrained.test_accuracy, 100.0 * res->probe.random_init.test_accuracy,
                    res->probe.seconds);
        }
    }
    if (rc != SC_OK && t.log_file) fprintf(t.log_file, "error: %s\n", sc_last_error()); /* main prints it */
    trainer_release(&t);
    return rc;
}
