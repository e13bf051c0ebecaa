#ifndef AGENTRY_SPAWN_H
#define AGENTRY_SPAWN_H

#include <sys/types.h>

/// Resource limits for a handler; a negative value leaves that limit as the worker has it.
struct agentry_limits {
    long long memory_bytes;   // RLIMIT_AS
    long long cpu_seconds;    // RLIMIT_CPU
    long long open_files;     // RLIMIT_NOFILE
    long long processes;      // RLIMIT_NPROC
    long long uid;            // the user the handler runs as (setuid), negative: the worker's
    long long gid;            // its group (setgid, and no supplementary groups), negative: the worker's
};

/// Starts `path` (a path, not looked up in PATH) with `argv` and `envp` under a run guard (see guard.c): the guard,
/// a fork of the caller in a process group of its own, starts the program in a new process group, with stdin,
/// stdout and stderr from the given descriptors, every other descriptor closed, `limits` applied, `cwd` (NULL: the
/// caller's) and CAP_SYS_PTRACE dropped. The guard exits with the program's status once the program and everything
/// it started are gone; SIGTERM to the guard sends SIGTERM to all of them, SIGUSR1 kills all of them; the guard
/// kills all of them when the calling process dies. Returns 0 and sets `*guard_pid`, or an errno (the program's
/// exec failure included).
int agentry_spawn_guarded(const char *path, char *const argv[], char *const envp[], const char *cwd,
                          int stdin_fd, int stdout_fd, int stderr_fd, const struct agentry_limits *limits,
                          pid_t *guard_pid);

/// prctl(PR_SET_DUMPABLE, 0): other processes of the same user (handlers among them) can no longer read this
/// process's /proc/<pid>/environ or memory, nor ptrace it. Returns 0 or an errno.
int agentry_make_nondumpable(void);

/// prctl(PR_GET_DUMPABLE).
int agentry_is_dumpable(void);

/// pipe2(O_CLOEXEC).
int agentry_pipe(int fds[2]);

/// Sets O_NONBLOCK on one descriptor (the parent's end of a pipe). Returns 0 or an errno.
int agentry_set_nonblocking(int fd);

/// pidfd_open(pid, 0): a descriptor that becomes readable when the child exits. Returns it, or -errno (-ENOSYS on
/// kernels before 5.3).
int agentry_pidfd_open(pid_t pid);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). Returns it, or -errno.
int agentry_eventfd(void);

/// epoll_create1(EPOLL_CLOEXEC). Returns it, or -errno.
int agentry_epoll_create(void);

/// epoll_ctl(EPOLL_CTL_ADD / EPOLL_CTL_DEL) with `token` as the event's data. Returns 0 or an errno.
int agentry_epoll_add(int epfd, int fd, unsigned int events, unsigned long long token);
int agentry_epoll_remove(int epfd, int fd);

/// epoll_wait, with the events unpacked (struct epoll_event is packed on x86-64, which Swift does not import
/// faithfully). Returns the number of events, or -errno.
int agentry_epoll_wait(int epfd, unsigned long long *tokens, unsigned int *events, int max, int timeout_ms);

/// Blocks SIGPIPE in the calling thread: a write to a pipe whose reader is gone then fails with EPIPE instead of
/// stopping the process, whatever the process's disposition. Returns 0 or an errno.
int agentry_block_sigpipe(void);

/// EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP.
extern const unsigned int agentry_epollin, agentry_epollout, agentry_epollerr, agentry_epollhup;

#endif
