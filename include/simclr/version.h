/*
 * version.h - the library version and the git revision it was built from (generated at
 * build time by tools/version.cmake; "-dirty" marks uncommitted changes).
 */
#ifndef SIMCLR_VERSION_H
#define SIMCLR_VERSION_H

extern const char sc_version[];
extern const char sc_git_sha[];

#endif /* SIMCLR_VERSION_H */
