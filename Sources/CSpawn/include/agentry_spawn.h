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
