#ifndef AGENTRY_SPAWN_H
#define AGENTRY_SPAWN_H

#include <sys/types.h>

/// Starts `path` with `argv` and `envp` in a new process group of its own (pgid = its pid), in `cwd` (NULL: the
/// caller's), with stdin, stdout and stderr from the given descriptors and every other descriptor closed, so that
/// the child inherits neither the broker's nor the database's sockets. Returns 0 and sets `*pid`, or an errno.
int agentry_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                  int stdin_fd, int stdout_fd, int stderr_fd, pid_t *pid);

/// pipe2(O_CLOEXEC).
int agentry_pipe(int fds[2]);

#endif
