/*
 * file_index.h - where the bytes of each image of an encoded dataset are (internal).
 *
 * An ImageFolder index lists one file per sample (paths relative to the root); a shards index
 * lists the tar files and, per sample, the shard, offset and size of its image member, found
 * once with libarchive so that a worker reads a sample with one pread. Either index is built
 * once and cached (see file_index.c for the cache file and how it is validated).
 */
#ifndef SIMCLR_DATA_FILE_INDEX_H
#define SIMCLR_DATA_FILE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/data.h"
#include "simclr/status.h"

typedef enum sc_index_kind { SC_INDEX_FOLDER = 1, SC_INDEX_SHARDS = 2 } sc_index_kind;

struct sc_file_index {
    sc_index_kind kind;
    int labeled;
    char *root;              /* folder root, or the shard directory / file / pattern as given */
    int64_t count;           /* samples */
    char *strings;           /* NUL-terminated strings, addressed by offset */
    size_t strings_len;
    int64_t nfiles;          /* folder: count (file i is sample i); shards: the tar files */
    uint64_t *file_name;     /* [nfiles] folder: path relative to root; shards: the shard's path */
    uint32_t *member_shard;  /* shards: [count] file index of sample i */
    uint64_t *member_offset; /* shards: [count] byte offset of the image member's data */
    uint64_t *member_size;   /* shards: [count] its size */
    uint64_t *member_name;   /* shards: [count] the member's name */
    int32_t *labels;         /* [count] or NULL; handed to sc_dataset.labels by the openers */
    int num_classes;
    uint64_t *class_name;    /* folders with classes: [num_classes] directory names */
    char cache_path[4096];   /* the cache file used ("" when caching is off) */
    int from_cache;          /* 1 when loaded from a valid cache file */
};

/* Build (or load from the cache) the index of an ImageFolder. */
sc_status sc_file_index_folder(const char *root, int labeled, const char *cache, sc_file_index **out);
/* Build (or load from the cache) the index of WebDataset tar shards. */
sc_status sc_file_index_shards(const char *path, const char *cache, sc_file_index **out);
void sc_file_index_free(sc_file_index *ix);

/* Read sample i's bytes into *buf (grown with realloc as needed; *cap its size), *len the
 * byte count. On failure returns the reason and writes an explanation into msg. */
sc_bad_reason sc_file_index_read(const sc_file_index *ix, int64_t i, uint8_t **buf, size_t *cap,
                                 size_t *len, char *msg, size_t msg_cap);
/* "root/class/x.jpg" or "shard.tar:member.jpg". */
void sc_file_index_describe(const sc_file_index *ix, int64_t i, char *buf, size_t cap);

/* Files larger than this are not read (not images this trainer decodes). */
#define SC_MAX_IMAGE_FILE_BYTES (1ull << 30)

#endif /* SIMCLR_DATA_FILE_INDEX_H */
