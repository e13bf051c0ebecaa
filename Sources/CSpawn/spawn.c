#define _GNU_SOURCE
#include "agentry_spawn.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

int agentry_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                  int stdin_fd, int stdout_fd, int stderr_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }

    if ((rc = posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) != 0) goto done;
    if (cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) != 0) goto done;

    // A process group of its own, so a timeout can stop the handler and everything it started; default signal
    // dispositions and an empty mask, whatever the worker set for itself (SIGPIPE ignored, say).
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if ((rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigmask(&attr, &none)) != 0) goto done;
    if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) != 0) goto done;

    // posix_spawnp: a bare program name is looked up in the worker's PATH.
    rc = posix_spawnp(pid, path, &actions, &attr, argv, envp);
done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int agentry_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno;
}
