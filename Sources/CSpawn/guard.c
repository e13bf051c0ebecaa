// The run guard: a small process between the worker and an exec handler that makes sure the handler never outlives
// its run.
//
// The worker forks the guard; the guard starts the handler and stays its parent. The guard is a child subreaper, so
// whatever the handler starts ends up in the guard's subtree even after `setsid` or a double fork, and the guard
// can find it (by scanning /proc for its descendants) and kill it:
// - when the handler's main process exits (leftovers holding stdout would otherwise keep the run open);
// - when the worker asks (SIGTERM: TERM to every descendant; SIGUSR1: KILL to every descendant);
// - when the worker dies, even by SIGKILL: the guard holds the read end of a pipe whose only write end is the
//   worker's, and sees end-of-file.
// The guard then exits with the handler's status (the same exit code, or the same signal), so the worker sees the
// handler's outcome in the guard's.
//
// The guard is a fork of a multi-threaded process: it only makes system calls (no malloc, no locks, no stdio).

#define _GNU_SOURCE
#include "agentry_spawn.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CAP_SYS_PTRACE
#define CAP_SYS_PTRACE 19
#endif

static int lifeline[2] = {-1, -1};
static int lifeline_error = 0;
static pthread_once_t lifeline_once = PTHREAD_ONCE_INIT;

static void make_lifeline(void) {
    if (pipe2(lifeline, O_CLOEXEC) != 0) lifeline_error = errno;
}

int agentry_make_nondumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : errno;
}

int agentry_is_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

// MARK: The handler, started by the guard with clone(CLONE_VM | CLONE_VFORK)

struct handler_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int stdin_fd, stdout_fd, stderr_fd;
    pid_t guard;
    const struct agentry_limits *limits;
    volatile int error;
};

static int set_limit(int resource, long long value) {
    if (value < 0) return 0;
    struct rlimit current;
    if (getrlimit(resource, &current) != 0) return errno;
    rlim_t wanted = (rlim_t)value;
    // Never above the hard limit the worker has (raising it needs privileges); the hard limit is lowered too, so
    // that the handler cannot raise its soft limit again.
    if (current.rlim_max != RLIM_INFINITY && wanted > current.rlim_max) wanted = current.rlim_max;
    struct rlimit limit = { .rlim_cur = wanted, .rlim_max = wanted };
    return setrlimit(resource, &limit) == 0 ? 0 : errno;
}

static int handler_main(void *raw) {
    struct handler_args *args = raw;
    int rc;
    // Dies with the guard (whose only thread started it), whatever way the guard goes.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != args->guard) { args->error = ECHILD; _exit(127); }
    // A process group of its own, as handlers have always had: they may signal their group.
    if (setpgid(0, 0) != 0) { args->error = errno; _exit(127); }
    if (dup2(args->stdin_fd, 0) < 0 || dup2(args->stdout_fd, 1) < 0 || dup2(args->stderr_fd, 2) < 0) {
        args->error = errno;
        _exit(127);
    }
    if (args->cwd != NULL && chdir(args->cwd) != 0) { args->error = errno; _exit(127); }
    const struct agentry_limits *l = args->limits;
    if ((rc = set_limit(RLIMIT_AS, l->memory_bytes)) != 0 || (rc = set_limit(RLIMIT_CPU, l->cpu_seconds)) != 0 ||
        (rc = set_limit(RLIMIT_NOFILE, l->open_files)) != 0 || (rc = set_limit(RLIMIT_NPROC, l->processes)) != 0) {
        args->error = rc;
        _exit(127);
    }
    // Another user (--exec-user): the handler cannot read the worker's /proc files, whatever the worker runs as.
    if (l->gid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)l->gid) != 0)) { args->error = errno; _exit(127); }
    if (l->uid >= 0 && setuid((uid_t)l->uid) != 0) { args->error = errno; _exit(127); }
    // A handler running as root keeps its other capabilities but not CAP_SYS_PTRACE (it cannot ptrace the worker);
    // root can still read the non-dumpable worker's /proc files, so workers should not run as root. Fails harmlessly
    // (EPERM) when the worker is not root.
    (void)prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(args->path, args->argv, args->envp);
    args->error = errno;
    _exit(127);
}

// MARK: Finding and signalling descendants

#define MAX_PROCESSES 65536

static pid_t scan_pids[MAX_PROCESSES];
static pid_t scan_parents[MAX_PROCESSES];

/// The parent of `pid`, read from /proc/<pid>/stat, or -1.
static pid_t parent_of(const char *name) {
    char path[64] = "/proc/";
    size_t n = strlen(name);
    if (n > 20) return -1;
    memcpy(path + 6, name, n);
    memcpy(path + 6 + n, "/stat", 6);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buffer[512];
    ssize_t got = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (got <= 0) return -1;
    buffer[got] = 0;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; the last ')' ends it.
    char *close_paren = strrchr(buffer, ')');
    if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] == 0 || close_paren[3] != ' ') return -1;
    pid_t parent = 0;
    for (char *p = close_paren + 4; *p >= '0' && *p <= '9'; p++) parent = parent * 10 + (*p - '0');
    return parent;
}

/// Every process that descends from `root`, into `out` (at most `max`). Returns how many.
static int descendants(pid_t root, pid_t *out, int max) {
    int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 0;
    int count = 0;
    char buffer[8192];
    for (;;) {
        long got = syscall(SYS_getdents64, dir, buffer, sizeof buffer);
        if (got <= 0) break;
        for (long offset = 0; offset < got;) {
            struct { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; } *entry =
                (void *)(buffer + offset);
            offset += entry->reclen;
            if (entry->name[0] < '1' || entry->name[0] > '9' || count >= MAX_PROCESSES) continue;
            pid_t pid = 0;
            int numeric = 1;
            for (char *p = entry->name; *p; p++) {
                if (*p < '0' || *p > '9') { numeric = 0; break; }
                pid = pid * 10 + (*p - '0');
            }
            if (!numeric) continue;
            pid_t parent = parent_of(entry->name);
            if (parent < 0) continue;
            scan_pids[count] = pid;
            scan_parents[count] = parent;
            count++;
        }
    }
    close(dir);
    // Mark the descendants of root: a process whose parent is root or a marked process, until nothing changes.
    int found = 0;
    int changed = 1;
    while (changed) {
        changed = 0;
        for (int i = 0; i < count; i++) {
            if (scan_pids[i] == 0) continue;
            int parent_is_ours = scan_parents[i] == root;
            for (int j = 0; j < found && !parent_is_ours; j++) parent_is_ours = scan_parents[i] == out[j];
            if (parent_is_ours && found < max) {
                out[found++] = scan_pids[i];
                scan_pids[i] = 0;
                changed = 1;
            }
        }
    }
    return found;
}

static pid_t found_pids[MAX_PROCESSES];

static void signal_descendants(int signal) {
    int n = descendants(getpid(), found_pids, MAX_PROCESSES);
    for (int i = 0; i < n; i++) kill(found_pids[i], signal);
}

static void reap(pid_t handler, int *handler_status, int *handler_done) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == handler) { *handler_status = status; *handler_done = 1; }
    }
}

/// Kills every descendant and reaps them all; repeats while kills reveal more (children of the killed are
/// reparented to the guard, and a process may fork between a scan and its kill). Gives up after about ten seconds
/// (a process stuck in uninterruptible sleep cannot be killed).
static void kill_all(pid_t handler, int *handler_status, int *handler_done) {
    struct timespec pause = { .tv_sec = 0, .tv_nsec = 1000000 };
    for (int round = 0; round < 10000; round++) {
        int n = descendants(getpid(), found_pids, MAX_PROCESSES);
        for (int i = 0; i < n; i++) kill(found_pids[i], SIGKILL);
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == handler) { *handler_status = status; *handler_done = 1; }
        }
        if (pid < 0) return;   // ECHILD: no child left, so no descendant either
        nanosleep(&pause, NULL);
    }
}

static void exit_like(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    int signal = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigaction(signal, &action, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), signal);
    _exit(128 + signal);
}

static char handler_stack[64 * 1024] __attribute__((aligned(16)));

static void write_all(int fd, const void *bytes, size_t count) {
    while (count > 0) {
        ssize_t n = write(fd, bytes, count);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        bytes = (const char *)bytes + n;
        count -= (size_t)n;
    }
}

static void close_all_but(const int *keep, int count) {
    // The kept descriptors in order; everything from 3 up that is not kept is closed.
    int sorted[8];
    for (int i = 0; i < count; i++) sorted[i] = keep[i];
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) { int t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t; }
    unsigned int from = 3;
    int failed = 0;
    for (int i = 0; i < count; i++) {
        if ((unsigned int)sorted[i] < from) continue;
        if ((unsigned int)sorted[i] > from) failed |= syscall(SYS_close_range, from, (unsigned int)sorted[i] - 1, 0) != 0;
        from = (unsigned int)sorted[i] + 1;
    }
    failed |= syscall(SYS_close_range, from, ~0U, 0) != 0;
    if (failed) {
        // No close_range (a kernel before 5.9): one by one, up to the descriptor limit.
        struct rlimit files;
        long last = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY ? (long)files.rlim_cur : 65536;
        for (long fd = 3; fd < last; fd++) {
            int kept = 0;
            for (int i = 0; i < count; i++) kept |= keep[i] == fd;
            if (!kept) close((int)fd);
        }
    }
}

static void guard_main(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdin_fd,
                       int stdout_fd, int stderr_fd, const struct agentry_limits *limits, int report_fd) {
    // Default dispositions for everything (the worker's handlers are not this process's business); all signals
    // stay blocked here: the guard takes the ones it cares about from a signalfd.
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &action, NULL);
    }
    int keep[5] = { stdin_fd, stdout_fd, stderr_fd, report_fd, lifeline[0] };
    close_all_but(keep, 5);
    int error = 0;
    if (setpgid(0, 0) != 0) error = errno;
    if (!error && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) error = errno;
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGUSR1);
    int signals = error ? -1 : signalfd(-1, &wanted, SFD_CLOEXEC | SFD_NONBLOCK);
    if (!error && signals < 0) error = errno;
    pid_t handler = -1;
    struct handler_args args = {
        .path = path, .argv = argv, .envp = envp, .cwd = cwd, .stdin_fd = stdin_fd, .stdout_fd = stdout_fd,
        .stderr_fd = stderr_fd, .guard = getpid(), .limits = limits, .error = 0,
    };
    if (!error) {
        handler = clone(handler_main, handler_stack + sizeof handler_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
        if (handler < 0) error = errno;
        else if (args.error != 0) error = args.error;
    }
    write_all(report_fd, &error, sizeof error);
    close(report_fd);
    close(stdin_fd);
    close(stdout_fd);
    close(stderr_fd);
    int handler_status = 0, handler_done = 0;
    if (error) {
        if (handler > 0) waitpid(handler, &handler_status, 0);
        _exit(127);
    }
    for (;;) {
        struct pollfd fds[2] = { { .fd = signals, .events = POLLIN }, { .fd = lifeline[0], .events = POLLIN } };
        int ready = poll(fds, 2, -1);
        if (ready < 0) continue;   // EINTR
        if (fds[1].revents) {
            // The worker is gone (its write end closed): nothing of this run may stay behind.
            kill_all(handler, &handler_status, &handler_done);
            _exit(137);
        }
        struct signalfd_siginfo info;
        while (read(signals, &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGTERM) {
                kill(-handler, SIGTERM);
                signal_descendants(SIGTERM);
            } else if (info.ssi_signo == SIGUSR1) {
                kill_all(handler, &handler_status, &handler_done);
            }
        }
        reap(handler, &handler_status, &handler_done);
        if (handler_done) {
            // The main process is gone; what it left behind (in its group or not) goes with it.
            kill_all(handler, &handler_status, &handler_done);
            exit_like(handler_status);
        }
    }
}

int agentry_spawn_guarded(const char *path, char *const argv[], char *const envp[], const char *cwd,
                          int stdin_fd, int stdout_fd, int stderr_fd, const struct agentry_limits *limits,
                          pid_t *guard_pid) {
    pthread_once(&lifeline_once, make_lifeline);
    if (lifeline_error != 0) return lifeline_error;
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    // No signal handler of the worker's may run in the forked child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        guard_main(path, argv, envp, cwd, stdin_fd, stdout_fd, stderr_fd, limits, report[1]);
        _exit(127);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        return saved;
    }
    int error = 0;
    ssize_t got;
    do { got = read(report[0], &error, sizeof error); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got != sizeof error) error = ECHILD;
    if (error != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return error;
    }
    *guard_pid = pid;
    return 0;
}
