/*
 * cmd_bench.c - `simclr bench <name>`: the benchmarks. Each one validates its result before it
 * times anything and prints one JSON line per case (git revision, device, shape, timings),
 * which benchmarks/run_*.sh append to benchmarks/results/ next to the baseline measured in the
 * same run. Benchmarks are not tests: nothing here asserts a speed.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} benches[] = {
    {"step", sc_bench_step, "one SimCLR training step on synthetic data (views/s, TFLOP/s)"},
    {"ntxent", sc_bench_ntxent, "the contrastive loss, forward + backward (ms, extra memory, TFLOP/s)"},
    {"allreduce", sc_bench_allreduce, "the gradient all-reduce (ResNet-50 size) and a model of multi-GPU scaling"},
    {"lars", sc_bench_lars, "the optimizer step on the ResNet-50 parameters (ms, GB/s vs a device copy)"},
    {"loader", sc_bench_loader, "the data loader: views/s and images/s per core for 1, 2, 4, ... workers"},
};

int sc_cmd_bench(int argc, char **argv) {
    int n = (int)(sizeof benches / sizeof benches[0]);
    if (argc >= 2)
        for (int i = 0; i < n; i++)
            if (strcmp(argv[1], benches[i].name) == 0) return benches[i].run(argc - 1, argv + 1);
    FILE *out = argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? stderr : stdout;
    if (out == stderr) fprintf(stderr, "simclr: unknown benchmark '%s'\n\n", argv[1]);
    fprintf(out, "usage: simclr bench <name> [options]   (simclr bench <name> --help)\n\nbenchmarks:\n");
    for (int i = 0; i < n; i++) fprintf(out, "  %-10s %s\n", benches[i].name, benches[i].what);
    return out == stdout ? SC_EXIT_OK : SC_EXIT_USAGE;
}
